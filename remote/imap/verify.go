package imap

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailfs/remote"
)

// Changes never trust the server to ignore a UID it does not have. GNU
// Mailutils applies a UID STORE, COPY or FETCH naming a UID above its
// highest to its last message, and answers BAD for an absent UID below it;
// other servers have their own ways. So every change here
//
//   - first confirms, in the selected session, which of its UIDs exist: only
//     a FETCH or SEARCH answer that names the UID counts (present);
//   - then changes only those, and checks what the server did: each flag it
//     adds or removes is searched for in the whole folder before and after
//     the STORE, so that a message outside the request that gained or lost
//     the flag is seen, however the server reported it (safeStore); a copy
//     or move must name exactly the requested UIDs in its COPYUID;
//   - and undoes at once what touched another message, logs it as an error
//     and fails the call.
//
// Such changes hold Account.changing, so that two of them on the account's
// connections never take each other's effect for the server's mistake.
// Another client changing the same flag on another message within the
// moment between the two searches is taken for one, and changed back:
// safe (nothing is lost), and logged.

// errCollateral is the error of a change the server applied to messages
// that were not asked for (and that mailfs then undid).
var errCollateral = fmt.Errorf("the server changed messages that were not asked for: %w", remote.ErrProtocol)

// present returns, sorted, which of uids (sorted, no repeats) the open
// folder has, with their flags, as FETCH (UID FLAGS) answers them: a
// response counts only if it names one of the UIDs asked for. A server that
// answers BAD for a set with an absent UID is asked again with UID SEARCH,
// and the UIDs it names are fetched. flags of a UID present is never nil.
func (a *Account) present(cn *conn, uids []uint32) ([]uint32, map[uint32][]imap.Flag, error) {
	flags := make(map[uint32][]imap.Flag, len(uids))
	for chunk := range slices.Chunk(uids, maxSet) {
		err := fetchFlags(cn, chunk, flags)
		if err != nil && isBad(err) {
			found, serr := searchUIDs(cn, &imap.SearchCriteria{UID: []imap.UIDSet{uidSet(chunk)}}, chunk)
			if serr != nil {
				return nil, nil, fmt.Errorf("imap: %s: which UIDs exist: %w (FETCH: %v)", cn.selected, serr, err)
			}
			if len(found) > 0 {
				err = fetchFlags(cn, found, flags)
			} else {
				err = nil
			}
		}
		if err != nil {
			return nil, nil, err
		}
	}
	out := make([]uint32, 0, len(flags))
	for u := range flags {
		out = append(out, u)
	}
	slices.Sort(out)
	return out, flags, nil
}

// fetchFlags is UID FETCH <uids> (UID FLAGS); it records the responses
// that name one of uids.
func fetchFlags(cn *conn, uids []uint32, into map[uint32][]imap.Flag) error {
	set := uidSet(uids)
	msgs, err := cn.c.Fetch(set, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.UID == 0 || !set.Contains(m.UID) {
			continue
		}
		fl := m.Flags
		if fl == nil {
			fl = []imap.Flag{}
		}
		into[uint32(m.UID)] = fl
	}
	return nil
}

// searchUIDs runs UID SEARCH and returns, sorted, the UIDs it names that
// are among within (nil: any).
func searchUIDs(cn *conn, criteria *imap.SearchCriteria, within []uint32) ([]uint32, error) {
	return searchResult(search(cn, criteria), within)
}

// search sends UID SEARCH, with ESEARCH's RETURN (ALL) where the server
// has it: a compact answer for many UIDs.
func search(cn *conn, criteria *imap.SearchCriteria) *imapclient.SearchCommand {
	var opts *imap.SearchOptions
	if cn.c.Caps().Has(imap.CapESearch) || cn.c.Caps().Has(imap.CapIMAP4rev2) {
		opts = &imap.SearchOptions{ReturnAll: true}
	}
	return cn.c.UIDSearch(criteria, opts)
}

func searchResult(cmd *imapclient.SearchCommand, within []uint32) ([]uint32, error) {
	data, err := cmd.Wait()
	if err != nil {
		return nil, err
	}
	var out []uint32
	set, _ := data.All.(imap.UIDSet)
	if set == nil {
		return nil, nil
	}
	if set.Dynamic() {
		return nil, fmt.Errorf("imap: SEARCH answered with a dynamic set %v: %w", set, remote.ErrProtocol)
	}
	nums, ok := set.Nums()
	if !ok {
		return nil, fmt.Errorf("imap: SEARCH answered with an unusable set: %w", remote.ErrProtocol)
	}
	for _, u := range nums {
		if within != nil {
			if _, ok := slices.BinarySearch(within, uint32(u)); !ok {
				continue
			}
		}
		out = append(out, uint32(u))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// flagCriteria is the search for messages that carry flag.
func flagCriteria(flag imap.Flag) *imap.SearchCriteria {
	return &imap.SearchCriteria{Flag: []imap.Flag{flag}}
}

// safeStore adds (op imap.StoreFlagsAdd) or removes (imap.StoreFlagsDel)
// flags on uids, which present has just confirmed, and checks the whole
// folder for messages that gained (or lost) one of them besides uids: those
// are changed back and the call fails with errCollateral. It returns the
// UIDs that do carry (or lack) every flag afterwards; the others vanished
// meanwhile (another client expunged them).
func (a *Account) safeStore(cn *conn, uids []uint32, op imap.StoreFlagsOp, flags []imap.Flag) ([]uint32, error) {
	flags = slices.DeleteFunc(slices.Clone(flags), func(f imap.Flag) bool { return strings.EqualFold(string(f), `\Recent`) })
	if len(uids) == 0 || len(flags) == 0 {
		return uids, nil
	}
	// Before: who carries each flag. One search at a time: untagged
	// SEARCH answers of pipelined searches cannot be told apart.
	had := make([][]uint32, len(flags))
	for i, f := range flags {
		var err error
		if had[i], err = searchUIDs(cn, flagCriteria(f), nil); err != nil {
			return nil, err
		}
	}
	// The change, then the same searches again, after it completed: a
	// SEARCH sent before may run before it (RFC 3501 5.5).
	cn.sent = true
	var storeErr error
	for chunk := range slices.Chunk(uids, maxSet) {
		if err := cn.c.Store(uidSet(chunk), &imap.StoreFlags{Op: op, Silent: true, Flags: flags}, nil).Close(); err != nil && storeErr == nil {
			storeErr = err
		}
	}
	has := make([][]uint32, len(flags))
	for i, f := range flags {
		var err error
		if has[i], err = searchUIDs(cn, flagCriteria(f), nil); err != nil {
			return nil, errors.Join(storeErr, err)
		}
	}

	done := slices.Clone(uids)
	var wrong []uint32
	for i, f := range flags {
		var stray []uint32 // changed, but not asked for
		if op == imap.StoreFlagsAdd {
			stray = missing(missing(has[i], had[i]), uids)
			done = slices.DeleteFunc(done, func(u uint32) bool { _, ok := slices.BinarySearch(has[i], u); return !ok })
		} else {
			stray = missing(missing(had[i], has[i]), uids)
			done = slices.DeleteFunc(done, func(u uint32) bool { _, ok := slices.BinarySearch(has[i], u); return ok })
		}
		if len(stray) > 0 && op == imap.StoreFlagsDel {
			// A message that left the folder meanwhile (another client
			// expunged it) lost the flag with it: not a stray.
			var err error
			if stray, _, err = a.present(cn, stray); err != nil {
				return done, err
			}
		}
		if len(stray) == 0 {
			continue
		}
		wrong = append(wrong, stray...)
		undo := imap.StoreFlagsDel
		if op == imap.StoreFlagsDel {
			undo = imap.StoreFlagsAdd
		}
		uerr := cn.c.Store(uidSet(stray), &imap.StoreFlags{Op: undo, Silent: true, Flags: []imap.Flag{f}}, nil).Close()
		a.log.Error("imap: THE SERVER CHANGED MESSAGES MAILFS DID NOT ASK FOR; changed back",
			"folder", cn.selected, "asked", uidSet(uids).String(), "flag", string(f),
			"added", op == imap.StoreFlagsAdd, "also_changed", uidSet(stray).String(), "undo_err", uerr)
	}
	if len(wrong) > 0 {
		slices.Sort(wrong)
		return done, fmt.Errorf("imap: %s: store %s on %s: %w (UIDs %s, changed back)", cn.selected, flagNames(flags), uidSet(uids), errCollateral, uidSet(slices.Compact(wrong)))
	}
	if storeErr != nil {
		return done, storeErr
	}
	// Those the change did not reach are gone (another client expunged
	// them), or the server would not keep the flag.
	if rest := missing(uids, done); len(rest) > 0 {
		still, _, err := a.present(cn, rest)
		if err != nil {
			return done, err
		}
		if len(still) > 0 {
			verb := "add"
			if op == imap.StoreFlagsDel {
				verb = "remove"
			}
			return done, fmt.Errorf("imap: %s: the server did not %s %s on UIDs %s: %w", cn.selected, verb, flagNames(flags), uidSet(still), remote.ErrUnsupported)
		}
	}
	return done, nil
}

func flagNames(flags []imap.Flag) string {
	s := make([]string, len(flags))
	for i, f := range flags {
		s[i] = string(f)
	}
	return "(" + strings.Join(s, " ") + ")"
}

// isBad reports a BAD answer: the server did not understand the command,
// or (Mailutils) will not FETCH a set that names an absent UID.
func isBad(err error) bool {
	var imapErr *imap.Error
	return errors.As(err, &imapErr) && imapErr.Type == imap.StatusResponseTypeBad
}

// hasFlag reports whether flags holds flag, in any case.
func hasFlag(flags []imap.Flag, flag imap.Flag) bool {
	return slices.ContainsFunc(flags, func(f imap.Flag) bool { return strings.EqualFold(string(f), string(flag)) })
}
