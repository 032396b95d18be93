print("bgsyncd: not yet")
