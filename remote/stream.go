package remote

import (
	"context"
	"io"
)

// BodyStreamer is implemented by accounts that can hand over a whole
// message as it arrives instead of in one buffer (POP3 RETR), so that
// memory stays bounded whatever the message's size: the bytes Body would
// return are written to w in order, in pieces of any size, and the count
// written is returned.
//
// w may have received a part of the message when an error is returned:
// the caller discards what it got (the cache keeps no record of it). The
// writer's own error is returned as it is and ends the fetch; an account
// never retries a fetch once w has been written to.
type BodyStreamer interface {
	StreamBody(ctx context.Context, ref Ref, w io.Writer) (int64, error)
}
