"""`StorageError`: the store cannot be read or written, said plainly."""
from __future__ import annotations

import errno
import os


class StorageError(OSError):
    """A store file or directory cannot be read or written.

    The message names the path and the cause in words a trader can act
    on (a full disk, a read-only dir); `errno` is the OS error's.
    """


_HINTS = {
    errno.ENOSPC: 'the disk is full',
    errno.EDQUOT: 'the disk quota is exceeded',
    errno.EACCES: 'permission denied (is the store dir read-only?)',
    errno.EPERM: 'permission denied (is the store dir read-only?)',
    errno.EROFS: 'the store is on a read-only file system',
    errno.ENOTDIR: 'a file is in the way of the store dir',
    errno.EEXIST: 'a file is in the way of the store dir',
}


def storage_error(action: str, path: str | os.PathLike, err: OSError) -> StorageError:
    """Turn an `OSError` met while `action`-ing `path` into a `StorageError`."""
    why = _HINTS.get(err.errno or 0, err.strerror or str(err))
    return StorageError(err.errno, f'cannot {action} {os.fspath(path)}: {why}')
