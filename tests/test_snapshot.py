"""Snapshots on real files: which files, content-addressed store, manifest id, code identity."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from jupyterlab_hpcml.core.errors import NotFound, UserInputError
from jupyterlab_hpcml.engine.models import CodeIdentity
from jupyterlab_hpcml.engine.snapshot import (
    code_identity,
    collect_files,
    load_snapshot,
    materialize,
    take_snapshot,
)


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def relpaths(project: Path, exclude: tuple[str, ...] = ()) -> list[str]:
    files, _ = collect_files(project, exclude)
    return [rel for rel, _ in files]


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "objects", tmp_path / "snapshots"


# ---------------------------------------------------------------------------
# Which files


def test_root_and_nested_gitignore(tmp_path: Path):
    root = write(tmp_path / "p", {
        ".gitignore": "*.log\nbuild/\n/top_only.txt\n",
        "train.py": "", "run.log": "", "build/out.bin": "", "top_only.txt": "",
        "src/top_only.txt": "",            # `/top_only.txt` is anchored to the root
        "src/.gitignore": "cache/\n/local.txt\n*.tmp\n",
        "src/model.py": "", "src/local.txt": "", "src/x.tmp": "", "src/cache/a": "",
        "src/deeper/local.txt": "",        # `/local.txt` is anchored to src/, not below
        "src/deeper/x.tmp": "", "src/deeper/debug.log": "",
        "x.tmp": "",                       # src/.gitignore does not apply outside src/
    })
    assert relpaths(root) == [
        ".gitignore", "src/.gitignore", "src/deeper/local.txt", "src/model.py",
        "src/top_only.txt", "train.py", "x.tmp",
    ]


def test_negation_patterns(tmp_path: Path):
    root = write(tmp_path / "p", {
        ".gitignore": "*.csv\n!keep.csv\ndata/*\n!data/small.csv\nlogs/\n!logs/important.txt\n",
        "a.csv": "", "keep.csv": "", "data/big.bin": "", "data/small.csv": "",
        "logs/important.txt": "",  # git cannot re-include inside an excluded folder
        "sub/.gitignore": "!*.csv\n", "sub/b.csv": "",  # a deeper file overrides a higher one
    })
    assert relpaths(root) == [
        ".gitignore", "data/small.csv", "keep.csv", "sub/.gitignore", "sub/b.csv",
    ]


def test_exclude_patterns(tmp_path: Path):
    root = write(tmp_path / "p", {
        ".gitignore": "secret.txt\n",
        "train.py": "", "notebooks/a.ipynb": "", "data/raw/x.csv": "", "data/y.csv": "",
        "secret.txt": "", "pkg/data/z.csv": "",
    })
    assert relpaths(root, ("*.ipynb", "/data/")) == [".gitignore", "pkg/data/z.csv", "train.py"]
    # Exclude comes last, so a negation brings back a file .gitignore leaves out.
    assert "secret.txt" in relpaths(root, ("!secret.txt",))


def test_gitignore_files_above_the_project_in_its_repository(tmp_path: Path):
    repo = write(tmp_path / "repo", {
        ".gitignore": "mlruns/\n*.pyc\n/projects/a/local.txt\n/top.txt\n",
        "projects/.gitignore": "*.tmp\n",
        "projects/a/.gitignore": "!keep.tmp\n",
        "projects/a/train.py": "", "projects/a/mlruns/0/meta.yaml": "", "projects/a/m.pyc": "",
        "projects/a/local.txt": "", "projects/a/top.txt": "", "projects/a/x.tmp": "",
        "projects/a/keep.tmp": "",
    })
    (repo / ".git").mkdir()
    assert relpaths(repo / "projects" / "a") == [".gitignore", "keep.tmp", "top.txt", "train.py"]
    # Outside a repository, folders above the project do not count.
    (repo / ".git").rmdir()
    assert "m.pyc" in relpaths(repo / "projects" / "a")


def test_project_folder_ignored_by_its_repository(tmp_path: Path):
    repo = write(tmp_path / "repo", {".gitignore": "scratch/\n*.log\n",
                                     "scratch/p/train.py": "", "scratch/p/a.log": ""})
    (repo / ".git").mkdir()
    files, notes = collect_files(repo / "scratch" / "p")
    assert [rel for rel, _ in files] == ["a.log", "train.py"]
    assert notes == ["the project folder is ignored by its git repository; "
                     "only .gitignore files inside the project apply"]


def test_git_folder_always_skipped(tmp_path: Path):
    root = write(tmp_path / "p", {
        ".git/config": "", ".git/objects/ab/cd": "", "train.py": "",
        "vendor/lib/.git": "gitdir: ../../.git/modules/lib\n", "vendor/lib/x.py": "",
    })
    assert relpaths(root) == ["train.py", "vendor/lib/x.py"]
    assert relpaths(root, ("!.git/",)) == ["train.py", "vendor/lib/x.py"]


def test_symlinks(tmp_path: Path):
    outside = write(tmp_path / "outside", {"secret.txt": "s", "dir/f.txt": "f"})
    root = write(tmp_path / "p", {"data/real.csv": "1,2\n", "src/a.py": "print(1)\n"})
    (root / "data" / "inside_link.csv").symlink_to("real.csv")
    (root / "data" / "out_link").symlink_to(outside / "secret.txt")
    (root / "dangling").symlink_to(root / "nope")
    (root / "outdir").symlink_to(outside / "dir")
    (root / "srclink").symlink_to(root / "src")  # a folder link inside the project is followed
    (root / "src" / "loop").symlink_to(root / "src")  # ... but never in a loop
    (root / ".gitignore").write_text("ignored_link\n")
    (root / "ignored_link").symlink_to(outside / "secret.txt")  # ignored: no note

    files, notes = collect_files(root)
    assert [rel for rel, _ in files] == [
        ".gitignore", "data/inside_link.csv", "data/real.csv", "src/a.py", "srclink/a.py",
    ]
    assert sorted(notes) == [
        "skipped dangling: broken link",
        "skipped data/out_link: points outside the project",
        "skipped outdir: points outside the project",
        "skipped src/loop: link loop",
        "skipped srclink/loop: link loop",
    ]

    objects, manifests = tmp_path / "objects", tmp_path / "snapshots"
    snap = take_snapshot(root, objects, manifests)
    assert snap.notes == notes
    dest = tmp_path / "run"
    materialize(snap, dest)
    link_copy = dest / "data" / "inside_link.csv"
    assert not link_copy.is_symlink() and link_copy.read_text() == "1,2\n"


def test_symlinked_project_root(tmp_path: Path):
    real = write(tmp_path / "real", {"a.py": "", "b/c.py": ""})
    (real / "link").symlink_to(real / "a.py")
    (tmp_path / "alias").symlink_to(real)
    files, notes = collect_files(tmp_path / "alias")
    assert [rel for rel, _ in files] == ["a.py", "b/c.py", "link"] and notes == []


# ---------------------------------------------------------------------------
# Store and manifest


def test_snapshot_store_and_manifest(tmp_path: Path, store):
    objects, manifests = store
    root = write(tmp_path / "p", {"a.txt": "same", "b/c.txt": "same", "run.sh": "echo hi\n"})
    os.chmod(root / "run.sh", 0o755)
    snap = take_snapshot(root, objects, manifests)

    assert [f.relpath for f in snap.files] == ["a.txt", "b/c.txt", "run.sh"]
    a, c, run = snap.files
    assert a.sha256 == c.sha256 and a.size == 4
    assert run.mode == 0o755 and a.mode & 0o777 == a.mode
    # Identical content is stored once.
    stored = [p for p in objects.rglob("*") if p.is_file()]
    assert len(stored) == 2
    assert snap.object_path(a) == objects / a.sha256[:2] / a.sha256
    assert snap.object_path(a).read_text() == "same"
    assert snap.total_bytes == 4 + 4 + 8

    manifest = json.loads((manifests / f"{snap.id}.json").read_text())
    assert manifest["id"] == snap.id and len(manifest["files"]) == 3

    loaded = load_snapshot(snap.id, objects, manifests)
    assert loaded == snap

    dest = tmp_path / "run"
    materialize(loaded, dest)
    assert (dest / "b" / "c.txt").read_text() == "same"
    assert os.stat(dest / "run.sh").st_mode & 0o777 == 0o755


def test_identical_content_identical_id(tmp_path: Path, store):
    objects, manifests = store
    files = {"train.py": "print('x')\n", "cfg/a.yaml": "a: 1\n"}
    one = take_snapshot(write(tmp_path / "one", files), objects, manifests)
    two = take_snapshot(write(tmp_path / "two", files), objects, manifests)
    assert one.id == two.id and len(one.id) == 64
    assert take_snapshot(tmp_path / "one", objects, manifests).id == one.id


def test_changes_give_new_id(tmp_path: Path, store):
    objects, manifests = store
    root = write(tmp_path / "p", {"train.py": "print('x')\n"})
    first = take_snapshot(root, objects, manifests)
    (root / "train.py").write_text("print('y')\n")
    edited = take_snapshot(root, objects, manifests)
    assert edited.id != first.id
    os.chmod(root / "train.py", 0o755)
    assert take_snapshot(root, objects, manifests).id != edited.id  # mode counts
    (root / "train.py").rename(root / "main.py")
    assert take_snapshot(root, objects, manifests).id not in {first.id, edited.id}
    # The old snapshot still loads with its own content.
    old = load_snapshot(first.id, objects, manifests)
    assert old.object_path(old.files[0]).read_text() == "print('x')\n"


def test_exclude_changes_the_snapshot(tmp_path: Path, store):
    objects, manifests = store
    root = write(tmp_path / "p", {"train.py": "", "big.bin": "x" * 1000})
    full = take_snapshot(root, objects, manifests)
    slim = take_snapshot(root, objects, manifests, exclude=["*.bin"])
    assert [f.relpath for f in slim.files] == ["train.py"] and slim.id != full.id


def test_not_a_folder(tmp_path: Path):
    with pytest.raises(UserInputError, match="not a folder"):
        collect_files(tmp_path / "missing")


def test_concurrent_snapshots_of_the_same_content(tmp_path: Path, store):
    from concurrent.futures import ThreadPoolExecutor

    objects, manifests = store
    root = write(tmp_path / "p", {f"f{i}.txt": f"content {i % 3}" for i in range(30)})
    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(lambda _: take_snapshot(root, objects, manifests).id, range(16)))
    assert len(ids) == 1
    snap = load_snapshot(ids.pop(), objects, manifests)
    for f in snap.files:
        assert snap.object_path(f).read_text() == (root / f.relpath).read_text()
    assert len([p for p in objects.rglob("*") if p.is_file()]) == 3


def test_load_snapshot_not_found(store):
    objects, manifests = store
    with pytest.raises(NotFound):
        load_snapshot("0" * 64, objects, manifests)
    with pytest.raises(NotFound):
        load_snapshot("../../etc/passwd", objects, manifests)


def test_existing_object_is_not_rewritten(tmp_path: Path, store):
    objects, manifests = store
    root = write(tmp_path / "p", {"a.txt": "content"})
    snap = take_snapshot(root, objects, manifests)
    obj = snap.object_path(snap.files[0])
    before = obj.stat().st_mtime_ns
    os.utime(obj, ns=(before - 10**9, before - 10**9))
    take_snapshot(root, objects, manifests)
    assert obj.stat().st_mtime_ns == before - 10**9
    assert not any((objects / "tmp").iterdir())  # no temp files left behind


# ---------------------------------------------------------------------------
# Code identity


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=T",
         "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    root = write(tmp_path / "repo", {".gitignore": "*.log\n", "train.py": "print(1)\n"})
    git(root, "init", "-q")
    return root


def identity(project: Path, tmp_path: Path):
    snap = take_snapshot(project, tmp_path / "objects", tmp_path / "snapshots")
    return code_identity(project, snap), snap


def test_code_identity_without_git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    root = write(tmp_path / "p", {"train.py": ""})
    ident, snap = identity(root, tmp_path)
    assert ident.content_hash == snap.id
    assert ident.git_commit is None and ident.git_dirty_hash is None


def test_code_identity_without_git_installed(repo: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch):
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "init")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    ident, snap = identity(repo, tmp_path)
    assert ident.content_hash == snap.id
    assert ident.git_commit is None and ident.git_dirty_hash is None


def test_code_identity_no_commits_yet(repo: Path, tmp_path: Path):
    ident, _ = identity(repo, tmp_path)
    assert ident.git_commit is None
    assert ident.git_dirty_hash is not None  # everything is uncommitted


def test_code_identity_clean_vs_dirty(repo: Path, tmp_path: Path):
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "init")
    head = git(repo, "rev-parse", "HEAD").strip()

    clean, _ = identity(repo, tmp_path)
    assert clean.git_commit == head and clean.git_dirty_hash is None

    (repo / "debug.log").write_text("ignored files do not make the tree dirty")
    assert identity(repo, tmp_path)[0].git_dirty_hash is None

    (repo / "train.py").write_text("print(2)\n")
    edited, _ = identity(repo, tmp_path)
    assert edited.git_commit == head and edited.git_dirty_hash is not None
    assert edited.content_hash != clean.content_hash
    assert identity(repo, tmp_path)[0].git_dirty_hash == edited.git_dirty_hash  # stable

    (repo / "new.py").write_text("x = 1\n")  # untracked files count, by content
    with_new, _ = identity(repo, tmp_path)
    assert with_new.git_dirty_hash not in {None, edited.git_dirty_hash}
    (repo / "new.py").write_text("x = 2\n")
    assert identity(repo, tmp_path)[0].git_dirty_hash != with_new.git_dirty_hash

    (repo / "new.py").unlink()
    (repo / "train.py").write_text("print(1)\n")
    assert identity(repo, tmp_path)[0].git_dirty_hash is None


def test_code_identity_project_in_subfolder(repo: Path, tmp_path: Path):
    project = write(repo / "projects" / "a", {"MLproject": "name: a\n", "a.py": ""})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "init")
    (repo / "train.py").write_text("changed outside the project\n")
    ident, _ = identity(project, tmp_path)
    assert ident.git_commit == git(repo, "rev-parse", "HEAD").strip()
    assert ident.git_dirty_hash is None  # only the project folder's changes count
    (project / "a.py").write_text("changed\n")
    assert identity(project, tmp_path)[0].git_dirty_hash is not None


def test_code_identity_project_ignored_by_repository(repo: Path, tmp_path: Path):
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "init")
    project = write(repo / "scratch", {"a.py": "print(1)\n"})
    (repo / ".gitignore").write_text("*.log\nscratch/\n")
    git(repo, "commit", "-qam", "ignore scratch")
    ident, snap = identity(project, tmp_path)
    assert ident == CodeIdentity(content_hash=snap.id)  # git cannot vouch for this code
