import sys
import time

print("sleeping", flush=True)
time.sleep(float(sys.argv[1]))
print("woke up", flush=True)
