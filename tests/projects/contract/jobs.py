"""The programs of the backend contract suite, one per scenario (see MLproject)."""
import os
import signal
import sys
import time

# Each line has 2-, 3- and 4-byte UTF-8 characters, so small reads split them.
GROW_LINES = [f"{i:02d} äöü 日本語 🙂\n" for i in range(12)]
ARTIFACTS = ["plain.txt", "with space.txt", "quote'single.txt", 'quote"double.txt',
             "naïve-日本.txt"]


def main(what, *args):
    if what == "hello":
        print("hello from the job", flush=True)
    elif what == "fail":
        print("failing now", flush=True)
        sys.exit(int(args[0]))
    elif what == "signal":
        print("killing myself", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    elif what == "sleep":
        print("sleeping", flush=True)
        time.sleep(float(args[0]))
    elif what == "grow":
        for line in GROW_LINES:
            sys.stdout.buffer.write(line.encode("utf-8"))
            sys.stdout.flush()
            time.sleep(0.15)
    elif what == "artifacts":
        import mlflow

        os.makedirs("out", exist_ok=True)
        with mlflow.start_run():  # the run the engine created (MLFLOW_RUN_ID)
            for name in ARTIFACTS:
                path = os.path.join("out", name)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(f"content of {name}\n")
                mlflow.log_artifact(path)
        print("logged", len(ARTIFACTS), "artifacts", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
