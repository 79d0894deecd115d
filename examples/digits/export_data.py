"""Write scikit-learn's bundled digits data as a CSV folder: data/digits-csv/part-NN.csv.

The folder is the project's declared dataset (datasets.yaml): staged to the cluster once,
versioned by content, and read by train.py and evaluate.py through $HPCML_DATA_DIGITS_CSV.
Each row: the 64 pixel values (0..16), then the label. Rows keep scikit-learn's order, so
the train/val/test split is the same whichever way the data is loaded.

    python export_data.py
"""
from __future__ import annotations

from pathlib import Path

from sklearn.datasets import load_digits

ROWS_PER_FILE = 200
OUT = Path(__file__).parent / "data" / "digits-csv"


def main() -> None:
    X, y = load_digits(return_X_y=True)
    OUT.mkdir(parents=True, exist_ok=True)
    header = ",".join([f"p{i}" for i in range(X.shape[1])] + ["label"])
    for part, start in enumerate(range(0, len(y), ROWS_PER_FILE)):
        rows = [",".join(str(int(v)) for v in X[i]) + f",{int(y[i])}"
                for i in range(start, min(start + ROWS_PER_FILE, len(y)))]
        (OUT / f"part-{part:02d}.csv").write_text("\n".join([header, *rows]) + "\n")
    print(f"wrote {len(y)} rows to {OUT}")


if __name__ == "__main__":
    main()
