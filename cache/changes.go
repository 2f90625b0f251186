package cache

import (
	"context"
	"fmt"
	"io"
	"time"

	"mailfs/remote"
)

var (
	_ remote.OneMover     = (*Account)(nil)
	_ remote.Mover        = (*Account)(nil)
	_ remote.Appender     = (*Account)(nil)
	_ remote.FlagSetter   = (*Account)(nil)
	_ remote.FolderEditor = (*Account)(nil)
)

// ability returns the inner account as T, or why the change cannot be made:
// offline (nothing is ever sent then) or an account that cannot.
func ability[T any](a *Account, what string) (T, error) {
	var zero T
	if a.inner == nil {
		return zero, fmt.Errorf("cache: %s: offline: %w", what, remote.ErrUnavailable)
	}
	t, ok := a.inner.(T)
	if !ok {
		return zero, fmt.Errorf("cache: %s: the account cannot: %w", what, remote.ErrUnsupported)
	}
	return t, nil
}

// Move implements remote.Mover; the moved messages leave the cache under
// their old folder (the destination lists them under new UIDs).
func (a *Account) Move(ctx context.Context, refs []remote.Ref, dest string) error {
	m, err := ability[remote.Mover](a, "move")
	if err != nil {
		return err
	}
	err = m.Move(ctx, refs, dest)
	if derr := a.s.drop(refs); derr != nil && err == nil {
		err = derr
	}
	return err
}

// MoveOne implements remote.OneMover.
func (a *Account) MoveOne(ctx context.Context, ref remote.Ref, dest string) (remote.Ref, error) {
	if om, err := ability[remote.OneMover](a, "move"); err == nil {
		to, err := om.MoveOne(ctx, ref, dest)
		if derr := a.s.drop([]remote.Ref{ref}); derr != nil && err == nil {
			err = derr
		}
		return to, err
	}
	return remote.Ref{}, a.Move(ctx, []remote.Ref{ref}, dest)
}

// Append implements remote.Appender.
func (a *Account) Append(ctx context.Context, folder string, body io.ReaderAt, size int64, date time.Time, flags []string) (uint32, uint32, error) {
	ap, err := ability[remote.Appender](a, "append")
	if err != nil {
		return 0, 0, err
	}
	return ap.Append(ctx, folder, body, size, date, flags)
}

// AppendLimit implements remote.AppendLimiter: the inner account's.
func (a *Account) AppendLimit() int64 {
	if l, ok := a.inner.(remote.AppendLimiter); ok {
		return l.AppendLimit()
	}
	return 0
}

// SetFlags implements remote.FlagSetter. Flags are not cached apart from
// listings, which the next List refreshes.
func (a *Account) SetFlags(ctx context.Context, ref remote.Ref, flags []string) error {
	fs, err := ability[remote.FlagSetter](a, "set flags")
	if err != nil {
		return err
	}
	return fs.SetFlags(ctx, ref, flags)
}

// CreateFolder implements remote.FolderEditor.
func (a *Account) CreateFolder(ctx context.Context, name string) error {
	fe, err := ability[remote.FolderEditor](a, "create folder")
	if err != nil {
		return err
	}
	return fe.CreateFolder(ctx, name)
}

// DeleteFolder implements remote.FolderEditor. What the cache holds of
// the folder stays until evicted; a folder created again under the name
// gets a new UIDVALIDITY, so none of it is ever served for it.
func (a *Account) DeleteFolder(ctx context.Context, name string) error {
	fe, err := ability[remote.FolderEditor](a, "delete folder")
	if err != nil {
		return err
	}
	return fe.DeleteFolder(ctx, name)
}

// RenameFolder implements remote.FolderEditor.
func (a *Account) RenameFolder(ctx context.Context, oldName, newName string) error {
	fe, err := ability[remote.FolderEditor](a, "rename folder")
	if err != nil {
		return err
	}
	return fe.RenameFolder(ctx, oldName, newName)
}
