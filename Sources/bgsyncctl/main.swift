print("bgsyncctl: not yet")
