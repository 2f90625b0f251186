package imap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailfs/remote"
)

var (
	_ remote.Deleter      = (*Account)(nil)
	_ remote.Mover        = (*Account)(nil)
	_ remote.Appender     = (*Account)(nil)
	_ remote.FlagSetter   = (*Account)(nil)
	_ remote.FolderEditor = (*Account)(nil)
)

// pendingExpunge is what Delete flagged \Deleted in one folder and has not
// expunged yet, under the folder's UIDVALIDITY then.
type pendingExpunge struct {
	validity uint32
	uids     map[uint32]struct{}
}

// Delete implements remote.Deleter. Per folder, on a read-write selection
// and after checking UIDVALIDITY: UID STORE <uids> +FLAGS.SILENT (\Deleted),
// then UID FETCH <uids> (UID) to learn which of them the folder still has.
// With expunge = immediate, UID EXPUNGE of exactly those follows; with
// on-unmount, Close expunges them. A UID the folder no longer has (another
// client expunged it) is reported, after the others are done, by an error
// wrapping remote.ErrNotFound; a folder whose UIDVALIDITY changed is left
// alone (remote.ErrUIDValidity).
func (a *Account) Delete(ctx context.Context, refs []remote.Ref) error {
	byFolder := map[string][]remote.Ref{}
	for _, r := range refs {
		if r.Folder == "" {
			return fmt.Errorf("imap: delete: ref %q without a folder", r.Key)
		}
		byFolder[r.Folder] = append(byFolder[r.Folder], r)
	}
	folders := make([]string, 0, len(byFolder))
	for f := range byFolder {
		folders = append(folders, f)
	}
	slices.Sort(folders)
	var errs []error
	for _, f := range folders {
		if err := a.deleteIn(ctx, f, byFolder[f]); err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
	}
	return errors.Join(errs...)
}

func (a *Account) deleteIn(ctx context.Context, folder string, refs []remote.Ref) error {
	wanted, absent := uidsOf(refs)
	if len(wanted) > 0 {
		unlock, err := a.lockChanges(ctx)
		if err != nil {
			return err
		}
		defer unlock()
		var gone []uint32
		err = a.do(ctx, folder, selWrite, func(cn *conn) error {
			if err := checkChange(cn, refs); err != nil {
				return err
			}
			// Only the UIDs the server names now are flagged: never one
			// it does not have (see verify.go).
			there, _, err := a.present(cn, wanted)
			if err != nil {
				return fmt.Errorf("imap: %s: %w", folder, err)
			}
			gone = missing(wanted, there)
			if len(there) == 0 {
				return nil
			}
			flagged, serr := a.safeStore(cn, there, imap.StoreFlagsAdd, []imap.Flag{imap.FlagDeleted})
			if serr != nil {
				serr = fmt.Errorf("imap: %s: flag \\Deleted: %w", folder, serr)
				if !errors.Is(serr, errCollateral) {
					return serr
				}
				// What the server did besides is undone; what was asked
				// is done, and goes on as asked. The call fails.
			}
			gone = append(gone, missing(there, flagged)...)
			slices.Sort(gone)
			if len(flagged) == 0 {
				return serr
			}
			switch a.expunge {
			case ExpungeOnUnmount:
				a.remember(folder, cn.validity, flagged)
			case ExpungeImmediate:
				// Remembered until done, so that Close tries again if
				// this fails.
				a.remember(folder, cn.validity, flagged)
				if err := a.uidExpunge(cn, flagged); err != nil {
					return errors.Join(serr, fmt.Errorf("imap: %s: expunge: %w", folder, err))
				}
				a.forget(folder, cn.validity, flagged)
			}
			return serr
		})
		if err != nil {
			return err
		}
		absent = append(absent, gone...)
	}
	return notFound(folder, absent)
}

// Move implements remote.Mover: UID FETCH (UID) to learn which refs the
// source still has, then UID MOVE of those (MOVE), or UID COPY, UID STORE
// +FLAGS.SILENT (\Deleted) and UID EXPUNGE of exactly the UIDs copied
// (UIDPLUS without MOVE). A server with neither gets nothing:
// remote.ErrUnsupported. Refs the source no longer has are reported by an
// error wrapping remote.ErrNotFound after the others are moved; so is a
// missing destination.
func (a *Account) Move(ctx context.Context, refs []remote.Ref, dest string) error {
	return a.move(ctx, refs, dest, nil)
}

// MoveOne implements remote.OneMover: Move of one message, saying where it
// landed (from the COPYUID the server sends with UIDPLUS).
func (a *Account) MoveOne(ctx context.Context, ref remote.Ref, dest string) (remote.Ref, error) {
	var to remote.Ref
	err := a.move(ctx, []remote.Ref{ref}, dest, func(src, dst, validity uint32) {
		if src == ref.UID && dst != 0 {
			to = remote.Ref{Folder: dest, UIDValidity: validity, UID: dst, Key: strconv.FormatUint(uint64(dst), 10)}
		}
	})
	return to, err
}

// landed maps the source UIDs of a single-UID move to its destination.
func landed(fn func(src, dst, validity uint32), chunk []uint32, validity uint32, dest imap.NumSet) {
	if fn == nil || len(chunk) != 1 || dest == nil {
		return
	}
	if set, ok := dest.(imap.UIDSet); ok {
		if uids, ok := set.Nums(); ok && len(uids) == 1 {
			fn(chunk[0], uint32(uids[0]), validity)
		}
	}
}

func (a *Account) move(ctx context.Context, refs []remote.Ref, dest string, fn func(src, dst, validity uint32)) error {
	if len(refs) == 0 {
		return nil
	}
	folder := refs[0].Folder
	for _, r := range refs {
		if r.Folder != folder {
			return fmt.Errorf("imap: move from two folders, %q and %q", folder, r.Folder)
		}
	}
	if dest == "" || folder == "" {
		return fmt.Errorf("imap: move from %q to %q: empty folder name", folder, dest)
	}
	if sameFolder(folder, dest) {
		return fmt.Errorf("imap: move from %q to itself", folder)
	}
	if !a.caps.Has(imap.CapMove) && !a.caps.Has(imap.CapUIDPlus) {
		return fmt.Errorf("imap: move to %q: the server has neither MOVE nor UIDPLUS: %w", dest, remote.ErrUnsupported)
	}
	wanted, absent := uidsOf(refs)
	if len(wanted) > 0 {
		unlock, err := a.lockChanges(ctx)
		if err != nil {
			return err
		}
		defer unlock()
		var gone []uint32
		err = a.do(ctx, folder, selWrite, func(cn *conn) error {
			if err := checkChange(cn, refs); err != nil {
				return err
			}
			caps := cn.c.Caps()
			useMove := caps.Has(imap.CapMove)
			if !useMove && !caps.Has(imap.CapUIDPlus) {
				return fmt.Errorf("imap: move to %q: the server has neither MOVE nor UIDPLUS: %w", dest, remote.ErrUnsupported)
			}
			there, _, err := a.present(cn, wanted)
			if err != nil {
				return fmt.Errorf("imap: %s: %w", folder, err)
			}
			var moved []uint32
			var stray error // what the server moved besides, undone
			defer func() { a.forget(folder, cn.validity, moved) }()
			for chunk := range slices.Chunk(there, maxSet) {
				cn.sent = true
				if useMove {
					// What present found is what moves: a server may
					// send COPYUID once per part of the set, and go-imap
					// keeps the last only.
					data, err := cn.c.Move(uidSet(chunk), dest).Wait()
					if err != nil {
						return movedSome(moved, folder, destErr(dest, err))
					}
					if data != nil {
						stray = errors.Join(stray, a.strayMoves(cn, folder, dest, chunk, data))
						landed(fn, chunk, data.UIDValidity, data.DestUIDs)
					}
					// Those the source still has did not move.
					left, _, err := a.present(cn, chunk)
					if err != nil {
						return movedSome(moved, folder, err)
					}
					moved = append(moved, missing(chunk, left)...)
					continue
				}
				data, err := cn.c.Copy(uidSet(chunk), dest).Wait()
				if err != nil {
					return movedSome(moved, folder, destErr(dest, err))
				}
				// Only what COPYUID says was copied is expunged, and
				// copies of anything else are removed again.
				copied := chunk
				if len(data.SourceUIDs) > 0 {
					// The move of what was asked goes on; the call
					// fails at the end.
					stray = errors.Join(stray, a.strayCopies(cn, folder, dest, chunk, data))
					copied = slices.DeleteFunc(slices.Clone(chunk), func(u uint32) bool { return !data.SourceUIDs.Contains(imap.UID(u)) })
				}
				flagged, err := a.safeStore(cn, copied, imap.StoreFlagsAdd, []imap.Flag{imap.FlagDeleted})
				if err != nil {
					return movedSome(moved, folder, fmt.Errorf("imap: move: copied %s from %q to %q, but could not flag the originals \\Deleted: %w", uidSet(copied), folder, dest, err))
				}
				if err := a.uidExpunge(cn, flagged); err != nil {
					return movedSome(moved, folder, fmt.Errorf("imap: move: copied %s from %q to %q, but could not expunge the originals: %w", uidSet(flagged), folder, dest, err))
				}
				landed(fn, flagged, data.UIDValidity, data.DestUIDs)
				moved = append(moved, flagged...)
			}
			slices.Sort(moved)
			gone = missing(wanted, moved)
			return stray
		})
		if err != nil {
			return err
		}
		absent = append(absent, gone...)
	}
	return notFound(folder, absent)
}

// copyPairs returns the source → destination UID pairs of a COPYUID.
func copyPairs(srcSet, dstSet imap.NumSet) (map[uint32]uint32, bool) {
	srcUIDs, ok1 := srcSet.(imap.UIDSet)
	dstUIDs, ok2 := dstSet.(imap.UIDSet)
	if !ok1 || !ok2 {
		return nil, false
	}
	src, ok1 := srcUIDs.Nums()
	dst, ok2 := dstUIDs.Nums()
	if !ok1 || !ok2 || len(src) != len(dst) {
		return nil, false
	}
	out := make(map[uint32]uint32, len(src))
	for i := range src {
		out[uint32(src[i])] = uint32(dst[i])
	}
	return out, true
}

// strays returns the destination UIDs of messages a COPY or MOVE of asked
// (sorted) took that were not asked for, by its COPYUID.
func strays(asked []uint32, src, dst imap.NumSet) []uint32 {
	pairs, ok := copyPairs(src, dst)
	if !ok {
		return nil
	}
	var out []uint32
	for src, dst := range pairs {
		if _, ok := slices.BinarySearch(asked, src); !ok {
			out = append(out, dst)
		}
	}
	slices.Sort(out)
	return out
}

// strayMoves moves back to folder what a MOVE of asked took from it besides
// asked, by its COPYUID, and fails with errCollateral if there was any.
func (a *Account) strayMoves(cn *conn, folder, dest string, asked []uint32, data *imapclient.MoveData) error {
	return a.undoStrays(cn, folder, dest, asked, data.SourceUIDs, data.DestUIDs, data.UIDValidity, "moved (moved back)", func(there []uint32) error {
		_, err := cn.c.Move(uidSet(there), folder).Wait()
		return err
	})
}

// strayCopies removes from dest the copies a COPY of asked made of messages
// not asked for, by its COPYUID, and fails with errCollateral if there were
// any. They are mailfs's own copies, made a moment ago: removing them
// leaves dest as it was.
func (a *Account) strayCopies(cn *conn, folder, dest string, asked []uint32, data *imap.CopyData) error {
	return a.undoStrays(cn, folder, dest, asked, data.SourceUIDs, data.DestUIDs, data.UIDValidity, "copied (copies removed)", func(there []uint32) error {
		flagged, err := a.safeStore(cn, there, imap.StoreFlagsAdd, []imap.Flag{imap.FlagDeleted})
		if err != nil {
			return err
		}
		return a.uidExpunge(cn, flagged)
	})
}

// undoStrays runs undo in dest on what a COPY or MOVE of asked (from folder)
// took besides asked, by its COPYUID (src, dst, validity), as dest still
// has it; logs it as an error and fails with errCollateral if there was
// any. cn has folder open read-write, and has it again afterwards.
func (a *Account) undoStrays(cn *conn, folder, dest string, asked []uint32, src, dst imap.NumSet, validity uint32, what string, undo func(there []uint32) error) error {
	extra := strays(asked, src, dst)
	if len(extra) == 0 {
		return nil
	}
	err := a.onFolder(cn, dest, validity, folder, func() error {
		there, _, err := a.present(cn, extra)
		if err != nil || len(there) == 0 {
			return err
		}
		return undo(there)
	})
	a.log.Error("imap: THE SERVER TOOK MESSAGES MAILFS DID NOT ASK FOR: "+what,
		"folder", folder, "to", dest, "asked", uidSet(asked).String(), "also_taken_now", uidSet(extra).String(), "undo_err", err)
	return fmt.Errorf("imap: %s from %q to %q: %w (UIDs %s of %q: %s)", uidSet(asked), folder, dest, errCollateral, uidSet(extra), dest, what)
}

// onFolder runs fn with other open read-write on cn, then opens back
// read-write. fn does not run if other's UIDVALIDITY is not otherValidity
// (the one its COPYUID named): the UIDs would name other messages. A
// folder whose UIDVALIDITY changed meanwhile fails.
func (a *Account) onFolder(cn *conn, other string, otherValidity uint32, back string, fn func() error) error {
	validity := cn.validity
	if err := a.open(cn, other, true, true); err != nil {
		return err
	}
	var err error
	if otherValidity != 0 && cn.validity != otherValidity {
		err = fmt.Errorf("imap: folder %q: %w (COPYUID said %d, now %d): nothing undone there", other, remote.ErrUIDValidity, otherValidity, cn.validity)
	} else {
		err = fn()
	}
	if oerr := a.open(cn, back, true, true); oerr != nil {
		return errors.Join(err, oerr)
	}
	if cn.validity != validity {
		return errors.Join(err, fmt.Errorf("imap: folder %q: %w while undoing", back, remote.ErrUIDValidity))
	}
	return err
}

// DefaultAppendLimit bounds a message APPENDed to a server that does not
// advertise APPENDLIMIT.
const DefaultAppendLimit = 256 << 20

// AppendLimit implements remote.AppendLimiter: the server's APPENDLIMIT
// (RFC 7889) where it advertises one for every folder, else
// DefaultAppendLimit.
func (a *Account) AppendLimit() int64 {
	if n, ok := a.caps.AppendLimit(); ok && n != nil && *n > 0 {
		return int64(*n)
	}
	return DefaultAppendLimit
}

// Append implements remote.Appender with APPEND: flags as given (less
// \Recent, which cannot be stored), INTERNALDATE date to the second (the
// server's clock for a zero date). The body is streamed from r; it is read
// twice, once to check it and once to send it. The UID and UIDVALIDITY come
// from APPENDUID (0, 0 without UIDPLUS).
//
// A body with a NUL byte is refused (remote.ErrUnsupported) before
// anything is sent: IMAP carries NUL only in a BINARY literal8, which
// go-imap's client cannot send, and Dovecot stores a NUL sent in a plain
// literal as another byte (0x80), so the message would come back altered.
// A body over AppendLimit is remote.ErrTooLarge, also before anything is
// sent.
//
// A connection that has the target folder open read-only (EXAMINE) opens
// it read-write first: Courier refuses APPEND into a folder the session
// has EXAMINEd.
func (a *Account) Append(ctx context.Context, folder string, r io.ReaderAt, size int64, date time.Time, flags []string) (uid, validity uint32, err error) {
	if folder == "" {
		return 0, 0, errors.New("imap: append: empty folder name")
	}
	if limit := a.AppendLimit(); size > limit {
		return 0, 0, fmt.Errorf("imap: append to %q: the message has %d bytes, the server takes %d at most: %w", folder, size, limit, remote.ErrTooLarge)
	}
	if i, err := indexNUL(r, size); err != nil {
		return 0, 0, fmt.Errorf("imap: append to %q: reading the message: %w", folder, err)
	} else if i >= 0 {
		return 0, 0, fmt.Errorf("imap: append to %q: the message has a NUL byte (offset %d), which IMAP can carry only in a BINARY literal8 that mailfs does not send: %w", folder, i, remote.ErrUnsupported)
	}
	fl, err := storeFlags(flags)
	if err != nil {
		return 0, 0, err
	}
	opts := &imap.AppendOptions{Flags: fl}
	if !date.IsZero() {
		opts.Time = date.Truncate(time.Second)
	}
	err = a.do(ctx, "", selRead, func(cn *conn) error {
		if sel := cn.c.Mailbox(); sel != nil && sameFolder(sel.Name, folder) && !(cn.rw && sameFolder(cn.selected, folder)) {
			if err := a.open(cn, folder, true, true); err != nil {
				return destErr(folder, err)
			}
		}
		cn.sent = true
		// The upload takes its time: the overall limit grows by it.
		cn.dc.Extend(time.Duration(size) * time.Second / minRate)
		cmd := cn.c.Append(folder, size, opts)
		n, werr := io.Copy(cmd, io.NewSectionReader(r, 0, size))
		if werr == nil && n != size {
			werr = fmt.Errorf("the message shrank to %d of %d bytes while it was sent", n, size)
		}
		cerr := cmd.Close()
		if werr != nil || cerr != nil {
			// The literal did not go out whole: the connection's state
			// is unknown, and the server must not keep a partial
			// message, so the command is never completed.
			cn.broken = true
			cn.c.Close()
			return fmt.Errorf("imap: append to %q: %w", folder, errors.Join(werr, cerr))
		}
		data, err := cmd.Wait()
		if err != nil {
			return destErr(folder, err)
		}
		if cn.c.Caps().Has(imap.CapUIDPlus) {
			uid, validity = uint32(data.UID), data.UIDValidity
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return uid, validity, nil
}

// indexNUL returns the offset of the first NUL byte among the size bytes
// of r, or -1.
func indexNUL(r io.ReaderAt, size int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for off := int64(0); off < size; {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if i := bytes.IndexByte(buf[:n], 0); i >= 0 {
			return off + int64(i), nil
		}
		off += int64(n)
		if err != nil && !(err == io.EOF && off == size) {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return -1, err
		}
	}
	return -1, nil
}

// SetFlags implements remote.FlagSetter. The flags replace the message's,
// exactly as given (\Recent, which cannot be stored, is dropped): nothing
// is kept implicitly, not even a \Deleted that Delete set. Flags without
// \Deleted thus undelete a message that Delete flagged and that is not
// expunged yet; an expunge on unmount then leaves it alone.
//
// The change is sent as UID STORE +FLAGS and -FLAGS of the difference from
// the flags the message has right before (read in the same session, which
// also confirms the UID exists), each checked by safeStore: the flags other
// clients change meanwhile on other messages are never touched, and a
// server that applies the change elsewhere is caught and undone. A message
// the folder no longer has is remote.ErrNotFound.
func (a *Account) SetFlags(ctx context.Context, ref remote.Ref, flags []string) error {
	fl, err := storeFlags(flags)
	if err != nil {
		return err
	}
	if ref.UID == 0 {
		return notFound(ref.Folder, []uint32{0})
	}
	deleted := hasFlag(fl, imap.FlagDeleted)
	uids := []uint32{ref.UID}
	unlock, err := a.lockChanges(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return a.do(ctx, ref.Folder, selWrite, func(cn *conn) error {
		if err := checkChange(cn, []remote.Ref{ref}); err != nil {
			return err
		}
		there, now, err := a.present(cn, uids)
		if err != nil {
			return fmt.Errorf("imap: %s/%d: %w", ref.Folder, ref.UID, err)
		}
		if len(there) == 0 {
			return notFound(ref.Folder, uids)
		}
		var add, del []imap.Flag
		for _, f := range fl {
			if !hasFlag(now[ref.UID], f) {
				add = append(add, f)
			}
		}
		for _, f := range now[ref.UID] {
			if !hasFlag(fl, f) && !strings.EqualFold(string(f), `\Recent`) {
				del = append(del, f)
			}
		}
		for _, step := range []struct {
			op    imap.StoreFlagsOp
			flags []imap.Flag
		}{{imap.StoreFlagsDel, del}, {imap.StoreFlagsAdd, add}} {
			if len(step.flags) == 0 {
				continue
			}
			done, err := a.safeStore(cn, uids, step.op, step.flags)
			if err != nil {
				return fmt.Errorf("imap: %s/%d: store flags: %w", ref.Folder, ref.UID, err)
			}
			if len(done) == 0 {
				return notFound(ref.Folder, uids) // expunged meanwhile
			}
		}
		if !deleted {
			a.forget(ref.Folder, cn.validity, uids)
		}
		return nil
	})
}

// CreateFolder implements remote.FolderEditor with CREATE.
func (a *Account) CreateFolder(ctx context.Context, name string) error {
	if name == "" {
		return errors.New("imap: create folder: empty name")
	}
	return a.do(ctx, "", selRead, func(cn *conn) error {
		cn.sent = true
		err := cn.c.Create(name, nil).Wait()
		if err == nil {
			return nil
		}
		if isCode(err, "") {
			// A NO without a code: tell "exists" from other refusals.
			if f, lerr := listOne(cn, name); lerr == nil && f != nil && !nonExistent(f) {
				return fmt.Errorf("imap: create folder %q: %w: %w", name, remote.ErrExists, err)
			}
		}
		return folderErr("create folder", name, err)
	})
}

// DeleteFolder implements remote.FolderEditor: LIST and STATUS (MESSAGES)
// first, so that a folder holding messages or child folders is refused
// (remote.ErrNotEmpty) before DELETE is sent. Messages Delete flagged
// there and not yet expunged (expunge = on-unmount) are expunged first:
// they would go with the folder at unmount anyway. Another client that
// adds a message between the check and DELETE loses it with the folder;
// IMAP has no "delete if empty".
func (a *Account) DeleteFolder(ctx context.Context, name string) error {
	if name == "" {
		return errors.New("imap: delete folder: empty name")
	}
	return a.do(ctx, "", selRead, func(cn *conn) error {
		f, err := listOne(cn, name)
		if err != nil {
			return err
		}
		if f == nil || nonExistent(f) {
			return fmt.Errorf("imap: delete folder %q: %w", name, remote.ErrNotFound)
		}
		if f.Delim != 0 {
			prefix := name + string(f.Delim)
			kids, err := cn.c.List("", prefix+"%", nil).Collect()
			if err != nil {
				return err
			}
			for _, k := range kids {
				if strings.HasPrefix(k.Mailbox, prefix) && !nonExistent(k) {
					return fmt.Errorf("imap: delete folder %q: it holds folder %q: %w", name, k.Mailbox, remote.ErrNotEmpty)
				}
			}
		}
		if !noSelect(f) {
			n, err := numMessages(cn, name)
			if err != nil {
				return err
			}
			if n > 0 {
				expunged, err := a.expungeBefore(cn, name, n)
				if err != nil {
					return err
				}
				if expunged {
					if n, err = numMessages(cn, name); err != nil {
						return err
					}
				}
			}
			if n > 0 {
				return fmt.Errorf("imap: delete folder %q: it holds %d messages: %w", name, n, remote.ErrNotEmpty)
			}
		}
		if err := a.leave(cn, name, f.Delim); err != nil {
			return err
		}
		cn.sent = true
		if err := cn.c.Delete(name).Wait(); err != nil {
			return folderErr("delete folder", name, err)
		}
		a.dropFolder(cn, name, f.Delim)
		a.pmu.Lock()
		for p := range a.pending {
			if under(p, name, f.Delim) {
				delete(a.pending, p)
			}
		}
		a.pmu.Unlock()
		return nil
	})
}

// RenameFolder implements remote.FolderEditor with RENAME.
func (a *Account) RenameFolder(ctx context.Context, oldName, newName string) error {
	if oldName == "" || newName == "" {
		return fmt.Errorf("imap: rename folder %q to %q: empty name", oldName, newName)
	}
	return a.do(ctx, "", selRead, func(cn *conn) error {
		f, err := listOne(cn, oldName)
		if err != nil {
			return err
		}
		if f == nil || nonExistent(f) {
			return fmt.Errorf("imap: rename folder %q: %w", oldName, remote.ErrNotFound)
		}
		if err := a.leave(cn, oldName, f.Delim); err != nil {
			return err
		}
		cn.sent = true
		if err := cn.c.Rename(oldName, newName, nil).Wait(); err != nil {
			if isCode(err, "") {
				if g, lerr := listOne(cn, newName); lerr == nil && g != nil && !nonExistent(g) {
					return fmt.Errorf("imap: rename folder %q to %q: %w: %w", oldName, newName, remote.ErrExists, err)
				}
			}
			return folderErr("rename folder "+quote(oldName)+" to", newName, err)
		}
		a.dropFolder(cn, oldName, f.Delim)
		a.pmu.Lock()
		for p, pe := range a.pending {
			if under(p, oldName, f.Delim) {
				delete(a.pending, p)
				a.pending[newName+p[len(oldName):]] = pe
			}
		}
		a.pmu.Unlock()
		return nil
	})
}

// leave makes cn let go of folder name (or a folder under it) before it
// is deleted or renamed: Dovecot ends a session whose selected folder is
// deleted under it. UNSELECT where the server has it, else EXAMINE INBOX;
// failing both, cn is closed after use.
func (a *Account) leave(cn *conn, name string, delim rune) error {
	sel := cn.selected
	if mb := cn.c.Mailbox(); mb != nil {
		sel = mb.Name
	}
	if sel == "" || !under(sel, name, delim) {
		return nil
	}
	cn.selected, cn.rw = "", false
	a.share(cn)
	if cn.c.Caps().Has(imap.CapUnselect) {
		return cn.c.Unselect().Wait()
	}
	if !under("INBOX", name, delim) {
		return a.open(cn, "INBOX", false, false)
	}
	a.mu.Lock()
	cn.drop = true
	a.mu.Unlock()
	return nil
}

// dropFolder closes the pooled connections that have folder name (or one
// under it) open, and has the busy ones closed when they come back: their
// selection names a folder that is gone.
func (a *Account) dropFolder(self *conn, name string, delim rune) {
	a.mu.Lock()
	var closing []*conn
	keep := a.idle[:0]
	for _, cn := range a.idle {
		if cn.shared != "" && under(cn.shared, name, delim) {
			closing = append(closing, cn)
		} else {
			keep = append(keep, cn)
		}
	}
	clear(a.idle[len(keep):])
	a.idle = keep
	for cn := range a.busy {
		if cn != self && cn.shared != "" && under(cn.shared, name, delim) {
			cn.drop = true
		}
	}
	a.mu.Unlock()
	for _, cn := range closing {
		cn.c.Close()
	}
}

// numMessages is STATUS (MESSAGES).
func numMessages(cn *conn, name string) (uint32, error) {
	st, err := cn.c.Status(name, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		return 0, folderErr("delete folder", name, err)
	}
	if st.NumMessages == nil {
		return 0, fmt.Errorf("imap: delete folder %q: STATUS without MESSAGES: %w", name, remote.ErrProtocol)
	}
	return *st.NumMessages, nil
}

// expungeBefore expunges, on cn, the UIDs Delete flagged in folder and
// left for Close, before the folder is deleted, if they are all of its n
// messages: they would go with the folder at Close anyway. If anything
// else is there, it does nothing: the deletion is refused and must change
// nothing.
func (a *Account) expungeBefore(cn *conn, folder string, n uint32) (bool, error) {
	a.pmu.Lock()
	pe := a.pending[folder]
	var uids []uint32
	if pe != nil {
		for u := range pe.uids {
			uids = append(uids, u)
		}
	}
	a.pmu.Unlock()
	if len(uids) < int(n) || a.expunge == ExpungeNever {
		return false, nil
	}
	if err := a.open(cn, folder, true, true); err != nil {
		return false, err
	}
	if cn.validity != pe.validity {
		return false, nil
	}
	slices.Sort(uids)
	there, _, err := a.present(cn, uids)
	if err != nil {
		return false, err
	}
	exists := cn.exists
	if mb := cn.c.Mailbox(); mb != nil {
		exists = max(exists, mb.NumMessages)
	}
	if uint32(len(there)) < exists {
		return false, nil
	}
	return true, a.expungeOn(cn, folder)
}

// expungeOn expunges the UIDs remembered for folder, which cn has open
// read-write, if the folder still has the UIDVALIDITY they were flagged
// under.
func (a *Account) expungeOn(cn *conn, folder string) error {
	a.pmu.Lock()
	pe := a.pending[folder]
	var uids []uint32
	if pe != nil {
		for u := range pe.uids {
			uids = append(uids, u)
		}
	}
	a.pmu.Unlock()
	if pe == nil || len(uids) == 0 {
		return nil
	}
	if pe.validity != cn.validity {
		a.log.Warn("imap: folder's UIDVALIDITY changed since messages were deleted: not expunging them",
			"folder", folder, "then", pe.validity, "now", cn.validity, "uids", uidSet(uids).String())
		a.forget(folder, pe.validity, uids)
		return nil
	}
	slices.Sort(uids)
	// Only what still carries \Deleted: a UID another client expunged, or
	// undeleted, is not named (see verify.go).
	flagged, err := searchUIDs(cn, &imap.SearchCriteria{UID: []imap.UIDSet{uidSet(uids)}, Flag: []imap.Flag{imap.FlagDeleted}}, uids)
	if err != nil {
		return fmt.Errorf("imap: %s: which deleted messages are left: %w", folder, err)
	}
	if err := a.uidExpunge(cn, flagged); err != nil {
		return fmt.Errorf("imap: %s: expunge %s: %w", folder, uidSet(flagged), err)
	}
	a.forget(folder, pe.validity, uids)
	return nil
}

// expungePending expunges, folder by folder, the UIDs Delete flagged and
// left for Close.
func (a *Account) expungePending() error {
	if a.expunge == ExpungeNever {
		return nil
	}
	a.pmu.Lock()
	var folders []string
	for f := range a.pending {
		folders = append(folders, f)
	}
	a.pmu.Unlock()
	slices.Sort(folders)
	var errs []error
	for _, f := range folders {
		err := a.do(context.Background(), f, selWrite, func(cn *conn) error { return a.expungeOn(cn, f) })
		if errors.Is(err, remote.ErrNotFound) {
			a.log.Warn("imap: folder gone before its deleted messages were expunged", "folder", f)
			a.pmu.Lock()
			delete(a.pending, f)
			a.pmu.Unlock()
			continue
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// remember notes UIDs Delete flagged in folder under validity.
func (a *Account) remember(folder string, validity uint32, uids []uint32) {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	pe := a.pending[folder]
	if pe != nil && pe.validity != validity {
		a.log.Warn("imap: folder's UIDVALIDITY changed since messages were deleted: not expunging them",
			"folder", folder, "then", pe.validity, "now", validity, "count", len(pe.uids))
		pe = nil
	}
	if pe == nil {
		pe = &pendingExpunge{validity: validity, uids: map[uint32]struct{}{}}
		a.pending[folder] = pe
	}
	for _, u := range uids {
		pe.uids[u] = struct{}{}
	}
}

// forget drops UIDs from what Close would expunge.
func (a *Account) forget(folder string, validity uint32, uids []uint32) {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	pe := a.pending[folder]
	if pe == nil || pe.validity != validity {
		return
	}
	for _, u := range uids {
		delete(pe.uids, u)
	}
	if len(pe.uids) == 0 {
		delete(a.pending, folder)
	}
}

// checkChange refuses a change to refs unless the open folder has exactly
// the UIDVALIDITY they were listed under.
func checkChange(cn *conn, refs []remote.Ref) error {
	for _, r := range refs {
		if r.UIDValidity != cn.validity {
			return fmt.Errorf("imap: folder %q: %w (listed under %d, now %d): nothing changed", r.Folder, remote.ErrUIDValidity, r.UIDValidity, cn.validity)
		}
	}
	return nil
}

// maxSet bounds the UIDs named in one command, which keeps command lines
// well below servers' limits (Dovecot: 64 KiB) even for scattered UIDs.
const maxSet = 1000

// uidExpunge is UID EXPUNGE <uids>: of those, what is flagged \Deleted goes.
// The caller names only UIDs it has just seen flagged. A server that
// reports more expunged messages than it was given UIDs has removed
// something else: that cannot be undone, but it is logged and the call
// fails.
func (a *Account) uidExpunge(cn *conn, uids []uint32) error {
	for chunk := range slices.Chunk(uids, maxSet) {
		cn.sent = true
		seqs, err := cn.c.UIDExpunge(uidSet(chunk)).Collect()
		if err != nil {
			return err
		}
		if len(seqs) > len(chunk) {
			a.log.Error("imap: THE SERVER EXPUNGED MORE MESSAGES THAN MAILFS NAMED",
				"folder", cn.selected, "asked", uidSet(chunk).String(), "expunged", len(seqs))
			return fmt.Errorf("imap: %s: UID EXPUNGE of %d messages removed %d: %w", cn.selected, len(chunk), len(seqs), errCollateral)
		}
	}
	return nil
}

// movedSome adds to err which messages were moved before it.
func movedSome(moved []uint32, folder string, err error) error {
	if len(moved) == 0 {
		return err
	}
	return fmt.Errorf("%w (UIDs %s of %q were moved before)", err, uidSet(moved), folder)
}

// uidsOf returns the refs' UIDs as a sorted list without repeats, and the
// refs that cannot name a message (UID 0).
func uidsOf(refs []remote.Ref) (wanted, absent []uint32) {
	seen := map[uint32]bool{}
	for _, r := range refs {
		if r.UID == 0 {
			absent = append(absent, 0)
			continue
		}
		if !seen[r.UID] {
			seen[r.UID] = true
			wanted = append(wanted, r.UID)
		}
	}
	slices.Sort(wanted)
	return wanted, absent
}

func uidSet(uids []uint32) imap.UIDSet {
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	return set
}

// missing returns the wanted UIDs that are not in have (both sorted).
func missing(wanted, have []uint32) []uint32 {
	var out []uint32
	for _, u := range wanted {
		if _, ok := slices.BinarySearch(have, u); !ok {
			out = append(out, u)
		}
	}
	return out
}

// notFound is the error for UIDs folder does not have, nil for none.
func notFound(folder string, uids []uint32) error {
	if len(uids) == 0 {
		return nil
	}
	s := make([]string, len(uids))
	for i, u := range uids {
		s[i] = fmt.Sprint(u)
	}
	return fmt.Errorf("imap: %s: no message with UID %s: %w", folder, strings.Join(s, ", "), remote.ErrNotFound)
}

// storeFlags checks flags for STORE and APPEND: system flags and keywords
// (atoms), \Recent dropped, duplicates dropped.
func storeFlags(flags []string) ([]imap.Flag, error) {
	out := []imap.Flag{}
	seen := map[string]bool{}
	for _, f := range flags {
		if strings.EqualFold(f, `\Recent`) {
			continue
		}
		if !validFlag(f) {
			return nil, fmt.Errorf("imap: invalid flag %q (a flag is \\ and a word, or a keyword: no spaces, parentheses, quotes or control characters): %w", f, remote.ErrInvalid)
		}
		if k := strings.ToLower(f); !seen[k] {
			seen[k] = true
			out = append(out, imap.Flag(f))
		}
	}
	return out, nil
}

// validFlag: "\" atom or atom, with atom-specials and "]" excluded.
func validFlag(f string) bool {
	s := strings.TrimPrefix(f, `\`)
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// isCode reports a NO with response code code ("": none).
func isCode(err error, code imap.ResponseCode) bool {
	var imapErr *imap.Error
	return errors.As(err, &imapErr) && imapErr.Type == imap.StatusResponseTypeNo && imapErr.Code == code
}

// folderErr maps a server's refusal about a folder to the sentinels.
func folderErr(op, name string, err error) error {
	switch {
	case isCode(err, imap.ResponseCodeAlreadyExists):
		return fmt.Errorf("imap: %s %q: %w: %w", op, name, remote.ErrExists, err)
	case isCode(err, imap.ResponseCodeNonExistent), isCode(err, imap.ResponseCodeTryCreate):
		return fmt.Errorf("imap: %s %q: %w: %w", op, name, remote.ErrNotFound, err)
	}
	return fmt.Errorf("imap: %s %q: %w", op, name, err)
}

// destErr maps a refusal of APPEND, COPY or MOVE for lack of the target
// folder to remote.ErrNotFound.
func destErr(dest string, err error) error {
	if isCode(err, imap.ResponseCodeTryCreate) || isCode(err, imap.ResponseCodeNonExistent) {
		return fmt.Errorf("imap: folder %q: %w: %w", dest, remote.ErrNotFound, err)
	}
	return fmt.Errorf("imap: to folder %q: %w", dest, err)
}

// listOne returns the LIST entry of exactly name, nil if there is none.
func listOne(cn *conn, name string) (*imap.ListData, error) {
	list, err := cn.c.List("", name, nil).Collect()
	if err != nil {
		return nil, err
	}
	for _, l := range list {
		if sameFolder(l.Mailbox, name) {
			return l, nil
		}
	}
	return nil, nil
}

func noSelect(f *imap.ListData) bool {
	return slices.Contains(f.Attrs, imap.MailboxAttrNoSelect) || nonExistent(f)
}

func nonExistent(f *imap.ListData) bool {
	return slices.Contains(f.Attrs, imap.MailboxAttrNonExistent)
}

// sameFolder compares folder names, INBOX in any case.
func sameFolder(x, y string) bool {
	return x == y || (strings.EqualFold(x, "INBOX") && strings.EqualFold(y, "INBOX"))
}

// under reports whether folder is name or lies below it.
func under(folder, name string, delim rune) bool {
	return sameFolder(folder, name) || (delim != 0 && strings.HasPrefix(folder, name+string(delim)))
}

func quote(s string) string { return fmt.Sprintf("%q", s) }
