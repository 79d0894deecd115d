"""Confining paths to a root: the one place that decides whether a path may be read or written.

The rule everywhere: a path is judged by its *real* location (every symlink resolved),
and the check is made on what is actually opened — an open file descriptor, or the
directory descriptor a file is opened relative to — so that a name decoded once more
later, or a symlink swapped in between, cannot lead somewhere else. Error messages
name only the path the caller gave, never what lies outside the root (whether it
exists, what it contains, where a link points).

Used by the REST handlers (the lab's file browser is the user's world: the server's
root) and by the artifact reader (a run's artifact directory). The CLI and the Python
API run as the user on their own machine and are not confined.
"""
from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core.errors import NotFound, Problem, UserInputError


class NotAFolder(UserInputError):
    """A folder was asked for and the path is a file."""


def clean_relpath(path: str, what: str = "path", key: str | None = "path",
                  root_name: str = "its root") -> str:
    """``path`` as a normalised relative POSIX path that stays below its root ("" for the root).

    Refused: NUL and other control characters, backslashes (a separator elsewhere),
    absolute paths and any ``..`` that climbs above the start. The name is taken
    literally: no URL decoding happens here or after (``%2e`` is three characters).
    """
    if any(ord(c) < 0x20 or c == "\x7f" for c in path) or "\\" in path:
        raise UserInputError(Problem(f"invalid {what} {path!r}", key=key))
    if path.startswith("/"):
        raise UserInputError(Problem(f"{what} {path!r} must be relative", key=key))
    norm = posixpath.normpath(path) if path else ""
    if norm in (".", ""):
        return ""
    if norm == ".." or norm.startswith("../"):
        raise UserInputError(Problem(f"{what} {path!r} leaves {root_name}", key=key))
    return norm


def real(path: str | Path) -> Path:
    """``path`` with every symlink resolved (it need not exist)."""
    if "\0" in str(path):
        raise UserInputError(Problem(f"invalid path {str(path)!r}", key="path"))
    return Path(os.path.realpath(path))


def is_inside(root_real: Path, path_real: Path) -> bool:
    return path_real == root_real or path_real.is_relative_to(root_real)


def confine(root: str | Path, path: str | Path, what: str = "path", key: str | None = "path",
            root_name: str = "the server's root") -> Path:
    """The real path of ``path`` (relative to ``root``, or absolute) if it lies inside ``root``.

    Nothing about a path outside is revealed: the refusal is the same whether it
    exists or not, and it does not say where a symlink leads.
    """
    root_real = real(root)
    given = str(path)
    if "\0" in given:
        raise UserInputError(Problem(f"invalid {what} {given!r}", key=key))
    full = real(root_real / given)  # an absolute `path` replaces the root
    if not is_inside(root_real, full):
        raise UserInputError(Problem(f"{what} {given!r} is outside {root_name}", key=key))
    return full


def fd_path(fd: int) -> Path | None:
    """Where an open descriptor really is (Linux /proc; None where unknown)."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return None


def _check_fd_inside(fd: int, root_real: Path, expected: Path) -> None:
    """The opened object is the one that was checked: by its path where the OS tells it,
    else by identity with the checked path (a file swapped in between differs)."""
    where = fd_path(fd)
    if where is not None:
        ok = is_inside(root_real, where)
    else:
        opened, checked = os.fstat(fd), os.stat(expected, follow_symlinks=False)
        ok = (opened.st_dev, opened.st_ino) == (checked.st_dev, checked.st_ino)
    if not ok:
        raise UserInputError(Problem("the file changed while it was opened", key="path"))


def open_file(root: str | Path, relpath: str, what: str = "file",
              root_name: str = "its root") -> tuple[int, os.stat_result]:
    """A read-only descriptor of the regular file ``relpath`` below ``root`` and its stat.

    Symlinks inside the root are followed as long as they stay inside it. A FIFO or
    device is refused without blocking; a directory is a 400, a missing file a 404.
    """
    rel = clean_relpath(relpath, what)
    if not rel:
        raise UserInputError(Problem(f"give the path of a {what}", key="path"))
    root_real = real(root)
    target = confine(root_real, rel, what, root_name=root_name)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(target, flags)
    except FileNotFoundError:
        raise NotFound(f"{what} {rel!r} not found") from None
    except OSError as exc:  # e.g. ELOOP: the last part became a symlink after the check
        raise UserInputError(Problem(f"{what} {rel!r} cannot be opened: {exc.strerror}",
                                     key="path")) from None
    try:
        _check_fd_inside(fd, root_real, target)
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise UserInputError(Problem(f"{what} {rel!r} is a directory, not a file", key="path"))
        if not stat.S_ISREG(info.st_mode):
            raise UserInputError(Problem(f"{what} {rel!r} is not a regular file", key="path"))
        os.set_blocking(fd, True)
        return fd, info
    except BaseException:
        os.close(fd)
        raise


@contextmanager
def open_dir(root: str | Path, relpath: str, what: str = "folder",
             root_name: str = "its root") -> Iterator[tuple[int, Path]]:
    """A descriptor of the folder ``relpath`` below ``root`` (checked as opened), its real path."""
    rel = clean_relpath(relpath, what)
    root_real = real(root)
    target = confine(root_real, rel, what, root_name=root_name) if rel else root_real
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(target, flags)
    except FileNotFoundError:
        raise NotFound(f"{what} {rel!r} not found") from None
    except NotADirectoryError:
        raise NotAFolder(Problem(f"{what} {rel!r} is a file, not a folder", key="path")) from None
    except OSError as exc:
        raise UserInputError(Problem(f"{what} {rel!r} cannot be opened: {exc.strerror}",
                                     key="path")) from None
    try:
        _check_fd_inside(fd, root_real, target)
        yield fd, fd_path(fd) or target
    finally:
        os.close(fd)


def read_text(root: str | Path, relpath: str, what: str = "file", root_name: str = "its root",
              limit: int | None = None) -> str:
    """The UTF-8 text of a confined regular file (``limit``: refuse larger files)."""
    fd, info = open_file(root, relpath, what, root_name)
    with os.fdopen(fd, "rb") as fh:
        if limit is not None and info.st_size > limit:
            raise UserInputError(Problem(f"{what} {relpath!r} is larger than {limit} bytes",
                                         key="path"))
        data = fh.read() if limit is None else fh.read(limit + 1)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserInputError(Problem(f"{what} {relpath!r} is not UTF-8 text", key="path")) from None


def replace_file(root: str | Path, relpath: str, update: Callable[[str], str], what: str = "file",
                 root_name: str = "its root") -> str:
    """Rewrite the existing regular file ``relpath`` below ``root`` atomically; the new text.

    ``update(old_text) -> new_text``. Everything happens relative to a descriptor of the
    file's real parent folder, checked to be inside the root: the old text is read from
    the file opened there (not following a link), the new text goes to a temporary file
    created there and replaces the file by name there. A symlinked config inside the
    root is updated at its real location; one leading out of the root is refused.
    """
    rel = clean_relpath(relpath, what)
    if not rel:
        raise UserInputError(Problem(f"give the path of a {what}", key="path"))
    target = confine(root, rel, what, root_name=root_name)
    parent_rel = os.path.relpath(target.parent, real(root))
    parent_rel = "" if parent_rel == "." else parent_rel
    with open_dir(root, parent_rel, "folder", root_name) as (dir_fd, _):
        name = target.name
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        except FileNotFoundError:
            raise NotFound(f"{what} {rel!r} not found") from None
        except OSError as exc:
            raise UserInputError(Problem(f"{what} {rel!r} cannot be opened: {exc.strerror}",
                                         key="path")) from None
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise UserInputError(Problem(f"{what} {rel!r} is not a regular file", key="path"))
            try:
                old = fh.read().decode("utf-8")
            except UnicodeDecodeError:
                raise UserInputError(Problem(f"{what} {rel!r} is not UTF-8 text",
                                             key="path")) from None
        new = update(old)
        tmp = f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        tfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                      info.st_mode & 0o777, dir_fd=dir_fd)
        try:
            os.fchmod(tfd, info.st_mode & 0o777)  # the file's own mode, whatever the umask
            with os.fdopen(tfd, "wb") as out:
                out.write(new.encode("utf-8"))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass
            raise
        return new
