package imap

import (
	"errors"
	"mime"

	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-sasl"
)

// wordDecoder decodes RFC 2047 words in any charset go-message knows.
var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// xoauth2Client is the SASL XOAUTH2 mechanism (Google, Microsoft).
type xoauth2Client struct {
	user, token string
}

var _ sasl.Client = (*xoauth2Client)(nil)

func (c *xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

func (c *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	// The server sends a JSON error as a challenge; an empty answer makes it
	// finish with NO.
	if len(challenge) > 0 {
		return []byte{}, nil
	}
	return nil, errors.New("imap: unexpected xoauth2 challenge")
}
