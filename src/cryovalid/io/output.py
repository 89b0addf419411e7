"""The output folder (``--out``): checked, locked, written through a staging folder.

A report is never written piece by piece into ``--out`` itself. The run:

1. checks the folder (it is a folder or can be created; the report's own entries — report.json,
   maps/, … — have the right kind; no input file lies where the report writes; it does not
   already hold a report unless ``force``);
2. locks it (``.cryovalid.lock``, an exclusive ``flock``: a second run into the same folder is
   refused while the first is running; the lock dies with its process, so it is never stale);
3. writes everything into a fresh staging folder ``.cryovalid-partial-XXXX`` inside ``--out``
   (on the same file system, so that the final move is a rename);
4. at the end moves the staging folder's entries into place (a previous report's entries, with
   ``force``, are moved aside first and deleted only once the new ones are in place).

A late failure therefore never loses the work done (it stays in the staging folder, whose path
the error message gives) and never mixes two reports; and no input file is ever written to,
since every file is created new inside the staging folder and only renamed into place, and an
input that lies where the report would land is refused before the run (compared by real path
and by inode, so symbolic and hard links are caught).
"""
from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
import tempfile

from cryovalid.errors import InputError

# What a report consists of (top-level entries of --out); only these, and the entries the
# previous report listed in its manifest, are ever replaced.
REPORT_FILES = ("report.json", "report.html", "report.pdf", "fsc.csv", "fdr_fsc.csv")
REPORT_DIRS = ("maps", "figures", "chimerax")
# every top-level entry a committed report wrote (one name per line), so that a later --force
# replaces exactly those, whatever items wrote them (residues.csv, model/, ...)
MANIFEST_NAME = ".cryovalid-report"
LOCK_NAME = ".cryovalid.lock"
STAGING_PREFIX = ".cryovalid-partial-"
OLD_PREFIX = ".cryovalid-old-"


def _kind(path: str) -> str:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "missing"
    if stat.S_ISLNK(mode):
        try:
            mode = os.stat(path).st_mode
        except OSError:
            return "a broken symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a file"
    return "a special file"


def _inode(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives (Windows)
        return False


class OutputFolder:
    """``OutputFolder(out, inputs, force)``; call :meth:`prepare`, write into :attr:`staging`,
    then :meth:`commit` (or :meth:`abandon` on failure) and always :meth:`release`."""

    def __init__(self, out: str, inputs=(), force: bool = False):
        self.out = out
        self.abs = os.path.abspath(out)
        self.inputs = [p for p in inputs if p]
        self.force = force
        self.staging = None
        self.keep = False  # set when the staging folder must survive (a failed commit)
        self._lock_fd = None
        self._lock_path = os.path.join(self.abs, LOCK_NAME)

    # ---- checks ------------------------------------------------------------------------
    def _create(self):
        kind = _kind(self.abs)
        if kind not in ("missing", "a folder"):
            raise InputError(f"{self.out}: the output folder exists and is {kind}, not a folder")
        try:
            os.makedirs(self.abs, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise InputError(f"{self.out}: cannot create the output folder (a part of its path "
                             f"is a file)") from None
        except OSError as exc:
            raise InputError(f"{self.out}: cannot create the output folder "
                             f"({exc.strerror})") from None
        if not os.access(self.abs, os.W_OK | os.X_OK):
            raise InputError(f"{self.out}: the output folder is not writable")

    def _check_inputs(self, names=REPORT_FILES + REPORT_DIRS):
        """Refuse an input that lies where the report writes, i.e. at or under one of the
        entries ``names`` of the output folder (compared by real path, so symbolic links are
        resolved, and by inode, so hard links are caught)."""
        real_out = os.path.realpath(self.abs)
        targets = [os.path.realpath(os.path.join(self.abs, e)) for e in names]
        # inodes of every existing file the report would replace (hard links of an input)
        inodes = {}
        for e in names:
            p = os.path.join(self.abs, e)
            if os.path.isdir(p):
                for d, _, files in os.walk(p):
                    for f in files:
                        ino = _inode(os.path.join(d, f))
                        if ino:
                            inodes[ino] = os.path.join(d, f)
            elif os.path.isfile(p):
                ino = _inode(p)
                if ino:
                    inodes[ino] = p
        for inp in self.inputs:
            real = os.path.realpath(inp)
            where = None
            if real == real_out or _inside(real_out, real):
                where = "the output folder itself"
            for e, t in zip(names, targets):
                if real == t or _inside(real, t):
                    where = os.path.join(self.out, e)
            ino = _inode(inp)
            if where is None and ino in inodes:
                where = inodes[ino] + " (a hard link to it)"
            if where is not None:
                raise InputError(
                    f"{inp}: this input lies where the report writes ({where}); it would be "
                    f"replaced: copy it elsewhere or choose another --out")

    def _previous_entries(self) -> tuple:
        """The top-level entries the report already in the folder wrote (its manifest); plain
        names only (no separator, no leading dot), so a tampered manifest cannot name
        anything outside the folder or our own staging/lock files."""
        try:
            with open(os.path.join(self.abs, MANIFEST_NAME), encoding="utf-8") as fh:
                names = [ln.strip() for ln in fh]
        except (OSError, UnicodeDecodeError):
            return ()
        return tuple(n for n in names if n and "/" not in n and os.sep not in n
                     and not n.startswith(".") and n not in REPORT_FILES + REPORT_DIRS)

    def _check_entries(self):
        found = []
        for names, want, suffix in ((REPORT_FILES, "a file", ""), (REPORT_DIRS, "a folder", "/")):
            for e in names:
                kind = _kind(os.path.join(self.abs, e))
                if kind == "missing":
                    continue
                if kind != want:
                    raise InputError(f"{os.path.join(self.out, e)}: exists and is {kind}; the "
                                     f"report writes {want} there: remove it or choose another "
                                     f"--out")
                found.append(e + suffix)
        found += [e for e in self._previous_entries()
                  if os.path.lexists(os.path.join(self.abs, e))]
        if found and not self.force:
            raise InputError(f"{self.out}: the folder already holds a report "
                             f"({', '.join(found[:3])}); use --force to replace it, or choose "
                             f"another --out")

    def _lock(self):
        while True:
            try:
                fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise InputError(f"{self.out}: cannot create the lock file {LOCK_NAME} "
                                 f"({exc.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise InputError(f"{self.out}: another cryovalid run is writing into this "
                                     f"folder; wait for it to finish or choose another "
                                     f"--out") from None
                raise InputError(f"{self.out}: cannot lock the output folder "
                                 f"({exc.strerror})") from None
            # the holder before us may have removed the file after we opened it: retry then
            if _inode(self._lock_path) == (os.fstat(fd).st_dev, os.fstat(fd).st_ino):
                self._lock_fd = fd
                return
            os.close(fd)

    def prepare(self) -> str:
        """Check, lock and create the staging folder; returns its absolute path."""
        self._create()
        self._check_inputs()
        self._lock()
        try:
            self._check_entries()
            try:
                self.staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.abs)
            except OSError as exc:
                raise InputError(f"{self.out}: cannot write into the output folder "
                                 f"({exc.strerror})") from None
        except BaseException:
            self.release()
            raise
        return self.staging

    # ---- end of the run ----------------------------------------------------------------
    def commit(self):
        """Move the staging folder's entries into place (replacing a previous report's)."""
        entries = sorted(os.listdir(self.staging))
        known = REPORT_FILES + REPORT_DIRS + self._previous_entries()
        try:
            # again, with every name written: nothing may have moved in the meantime
            self._check_inputs(tuple(dict.fromkeys(known + tuple(entries))))
            for e in entries:
                if e not in known and os.path.lexists(os.path.join(self.abs, e)):
                    raise InputError(f"{os.path.join(self.out, e)}: exists and is not part of a "
                                     f"cryovalid report, so it is not replaced")
        except InputError as exc:
            self.keep = True
            raise InputError(f"{exc}; the new report is in {self.staging}") from None
        old = None
        existing = [e for e in known if os.path.lexists(os.path.join(self.abs, e))]
        try:
            if existing:
                old = tempfile.mkdtemp(prefix=OLD_PREFIX, dir=self.abs)
                for e in existing:
                    os.rename(os.path.join(self.abs, e), os.path.join(old, e))
            for e in entries:
                os.rename(os.path.join(self.staging, e), os.path.join(self.abs, e))
        except OSError as exc:
            msg = (f"{self.out}: could not move the report into place ({exc.strerror}); "
                   f"the new report is in {self.staging}")
            if old:
                msg += f" and the previous one in {old}"
            self.keep = True
            raise InputError(msg) from None
        os.rmdir(self.staging)
        self.staging = None
        if old:
            shutil.rmtree(old, ignore_errors=True)
        try:  # what this report wrote, for the next --force (losing it loses nothing)
            with open(os.path.join(self.abs, MANIFEST_NAME), "w", encoding="utf-8") as fh:
                fh.write("".join(f"{e}\n" for e in entries))
        except OSError:
            pass

    def abandon(self, keep: bool) -> str | None:
        """After a failure: delete the staging folder (``keep`` False, or nothing in it) or keep
        it; returns the kept path (None when deleted)."""
        if self.staging is None or not os.path.isdir(self.staging):
            return None
        if (keep or self.keep) and os.listdir(self.staging):
            return self.staging
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging = None
        return None

    def release(self):
        if self._lock_fd is not None:
            try:
                os.unlink(self._lock_path)  # while still holding it (see _lock)
            except OSError:
                pass
            os.close(self._lock_fd)
            self._lock_fd = None


def debug_log_path(out: str | None) -> str:
    """Where to write the traceback of an unexpected error: in --out when it is a writable
    folder, otherwise in the system's temporary folder."""
    if out and os.path.isdir(out) and os.access(out, os.W_OK):
        return os.path.join(os.path.abspath(out), "cryovalid-debug.log")
    return os.path.join(tempfile.gettempdir(), f"cryovalid-debug-{os.getpid()}.log")


def holds_complete_report(out: str) -> bool:
    """Whether ``out`` holds a committed report: its manifest (written last, after every entry
    was moved into place) lists report.json and every entry it lists exists. A run that was
    interrupted or killed leaves at most a staging folder, never a manifest of its own."""
    try:
        with open(os.path.join(out, MANIFEST_NAME), encoding="utf-8") as fh:
            names = [ln.strip() for ln in fh if ln.strip()]
    except (OSError, UnicodeDecodeError):
        return False
    return "report.json" in names and all(
        os.path.lexists(os.path.join(out, n)) for n in names if "/" not in n)


def remove_stale_staging(out: str) -> None:
    """Delete staging folders left by runs that were killed (batch reruns; call only while no
    other run writes into ``out``)."""
    try:
        names = os.listdir(out)
    except OSError:
        return
    for n in names:
        if n.startswith((STAGING_PREFIX, OLD_PREFIX)):
            shutil.rmtree(os.path.join(out, n), ignore_errors=True)
