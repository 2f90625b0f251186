package fs

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"syscall"

	"mailfs/remote"
)

// toErrno maps an error to the errno the kernel gets. Unknown errors become
// EIO and are logged: never ENOSYS, which would make the kernel stop calling
// the operation for good.
func toErrno(log *slog.Logger, op string, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var errno syscall.Errno
	switch {
	case errors.Is(err, remote.ErrNotFound), errors.Is(err, remote.ErrUIDValidity), errors.Is(err, os.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, remote.ErrReadOnly):
		return syscall.EROFS
	case errors.Is(err, remote.ErrNotEmpty):
		return syscall.ENOTEMPTY
	case errors.Is(err, remote.ErrExists):
		return syscall.EEXIST
	case errors.Is(err, remote.ErrUnsupported):
		return syscall.ENOTSUP
	case errors.Is(err, remote.ErrInvalid):
		return syscall.EINVAL
	case errors.Is(err, remote.ErrTooLarge):
		return syscall.EFBIG
	case errors.Is(err, os.ErrPermission):
		return syscall.EACCES
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	case errors.As(err, &errno) && errno != syscall.ENOSYS:
		return errno
	}
	log.Warn("mailfs: "+op+" failed", "err", err)
	return syscall.EIO
}
