print("bgsync-worker: not yet")
