"""Files written whole or not at all, and the comparison of a saved config with the current one.

Atomic writes: the content goes to a temporary file ``.<name>.<random>.tmp`` in the destination's
directory, is flushed to disk, and is renamed over the destination with `os.replace` (atomic on
POSIX within one file system). A reader sees the old file or the new one, never half of one; an
exception during the write (the serializer failing, KeyboardInterrupt) removes the temporary file
and leaves the destination as it was. A process killed mid-write can leave its temporary file
behind; writers that own a directory (`flowjax.data.pairs`) remove such leftovers. Temporary names
are unique, so two processes writing the same path at once each write a whole file and the last
rename wins.
"""

from __future__ import annotations

import json
import os
import secrets
import zipfile
from typing import Any, BinaryIO, Callable, Iterable, Mapping

import numpy as np

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed zip member timestamps: byte-identical files for identical arrays
_ABSENT = "(no such field)"


def _write_atomic(path: str, write: Callable[[BinaryIO], None], overwrite: bool = True) -> None:
    """``write(f)`` into a temporary file next to ``path``, fsync, then `os.replace` it onto ``path``."""
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    # 0o666 like a plain open(): the process umask decides the final permissions.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json_atomic(path: str, obj: Any) -> None:
    """``obj`` as JSON (indent 2, sorted keys) at ``path``, written atomically (see the module docstring)."""
    text = json.dumps(obj, indent=2, sort_keys=True)
    _write_atomic(path, lambda f: f.write(text.encode()))


def save_npz_atomic(path: str, arrays: Mapping[str, np.ndarray], *, overwrite: bool = True) -> None:
    """``arrays`` as an ``np.savez``-compatible .npz at ``path``, deterministic and written atomically.

    Members are uncompressed ``<name>.npy`` files in C order with fixed zip timestamps, so the same
    arrays give byte-identical files, and each array's data lies contiguously in the file, where it
    can be memory-mapped (`flowjax.data.pairs` does). Names may contain ``/`` (as `np.savez`'s).
    ``overwrite=False`` raises FileExistsError if ``path`` exists; an exception during the write
    leaves ``path`` as it was and no temporary file.
    """

    def write(f: BinaryIO) -> None:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, array in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
                info.external_attr = 0o644 << 16
                with zf.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asarray(array, order="C"), allow_pickle=False)

    _write_atomic(path, write, overwrite)


def config_diff(
    saved: Mapping[str, Any],
    current: Mapping[str, Any],
    keys: Iterable[str] | None = None,
    *,
    saved_as: str = "saved",
    current_as: str = "now",
    whole_sections: bool = False,
) -> tuple[list[str], list[str]]:
    """``(differences, added)`` between a config recorded earlier (``saved``) and the current one.

    ``keys`` names the entries compared, as dotted paths (``"data"``, ``"training.seed"``); None
    compares every top-level entry of either, in sorted order. A config's sections (dicts) gain
    fields as the code grows, and a new field's default keeps the old behaviour, so:

    - a field of a section that ``current`` has and ``saved`` lacks is *added*, not a difference:
      its dotted path is listed in ``added`` (an entry ``"a.b"`` absent from saved's section ``a``,
      or a field ``f`` of an entry that is a section on both sides, listed as ``"<entry>.f"``);
    - every other mismatch is a difference, including a field that ``saved`` has and ``current``
      lacks, and a top-level entry absent on either side (the top level is the record's own layout).

    Each difference is a string ``"<path>: <saved value> <saved_as>, <current value> <current_as>"``
    (values by ``repr``; an absent one is ``(no such field)``). A section that is a dict on both sides
    is reported field by field (``"data.num_train: 10 saved, 20 now"``), or with ``whole_sections``
    as one difference showing saved's section and current's restricted to saved's fields
    (``"data: {'num_train': 10} saved, {'num_train': 20} now"``). Sections are compared one level
    deep: a field whose value is itself a dict is compared as a whole value.
    """
    differences: list[str] = []
    added: list[str] = []
    absent = object()

    def show(value: Any) -> str:
        return _ABSENT if value is absent else repr(value)

    def differ(path: str, a: Any, b: Any) -> None:
        differences.append(f"{path}: {show(a)} {saved_as}, {show(b)} {current_as}")

    for key in sorted(set(saved) | set(current)) if keys is None else keys:
        *parents, name = key.split(".")
        a, b = saved, current
        for part in parents:
            a, b = a.get(part, {}), b.get(part, {})
        a, b = a.get(name, absent), b.get(name, absent)
        if a is absent and b is not absent and parents:
            added.append(key)
        elif isinstance(a, Mapping) and isinstance(b, Mapping):
            added += [f"{key}.{field}" for field in sorted(b) if field not in a]
            if whole_sections:
                known = {field: value for field, value in b.items() if field in a}
                if a != known:
                    differ(key, a, known)
            else:
                for field in sorted(a):
                    if a[field] != b.get(field, absent):
                        differ(f"{key}.{field}", a[field], b.get(field, absent))
        elif a != b:
            differ(key, a, b)
    return differences, added
