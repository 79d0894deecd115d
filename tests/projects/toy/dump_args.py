import json
import sys

with open("args.json", "w") as f:
    json.dump(sys.argv[1:], f)
print(json.dumps(sys.argv[1:]), flush=True)
