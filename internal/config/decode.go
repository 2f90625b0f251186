package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// rawAccount mirrors an [accounts.NAME] table. Every field is a Primitive so
// that the decoder marks the known keys as decoded (leaving unknown ones to
// MetaData.Undecoded) while this package reports type errors itself.
type rawAccount struct {
	Protocol            toml.Primitive `toml:"protocol"`
	Host                toml.Primitive `toml:"host"`
	Port                toml.Primitive `toml:"port"`
	TLS                 toml.Primitive `toml:"tls"`
	Username            toml.Primitive `toml:"username"`
	PasswordCmd         toml.Primitive `toml:"password_cmd"`
	PasswordEnv         toml.Primitive `toml:"password_env"`
	Auth                toml.Primitive `toml:"auth"`
	CAFile              toml.Primitive `toml:"ca_file"`
	TLSSkipVerify       toml.Primitive `toml:"tls_skip_verify"`
	AllowPlaintext      toml.Primitive `toml:"allow_plaintext"`
	Expunge             toml.Primitive `toml:"expunge"`
	PollInterval        toml.Primitive `toml:"poll_interval"`
	Timeout             toml.Primitive `toml:"timeout"`
	CacheMaxSize        toml.Primitive `toml:"cache_max_size"`
	DeleteAfterDownload toml.Primitive `toml:"delete_after_download"`
	CacheKeyCmd         toml.Primitive `toml:"cache_key_cmd"`
	Connections         toml.Primitive `toml:"connections"`
}

// knownKeys lists the keys of an account table, sorted.
var knownKeys = func() []string {
	t := reflect.TypeOf(rawAccount{})
	keys := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		keys = append(keys, t.Field(i).Tag.Get("toml"))
	}
	sort.Strings(keys)
	return keys
}()

func isKnownKey(k string) bool {
	i := sort.SearchStrings(knownKeys, k)
	return i < len(knownKeys) && knownKeys[i] == k
}

// topLevel mirrors the whole file.
type topLevel struct {
	Accounts toml.Primitive `toml:"accounts"`
}

// Parse parses a configuration held in data, applies defaults and validates
// every account. source names the data in error messages (normally the file
// path) and anchors relative ca_file paths; it may be empty.
func Parse(data []byte, source string) (*Config, error) {
	p := &parser{data: data, source: source}
	return p.parse()
}

type parser struct {
	data   []byte
	source string
	md     toml.MetaData
	lines  *lineIndex
}

func (p *parser) parse() (*Config, error) {
	var top topLevel
	md, err := toml.Decode(string(p.data), &top)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			msg := pe.Message
			if secretKey(pe.LastKey) {
				// The decoder's message may quote the value.
				msg = fmt.Sprintf("the value of %s is malformed (not shown, as it may be a secret); put strings in \"quotes\"", pe.LastKey)
			}
			return nil, &Error{File: p.source, Line: pe.Position.Line, Msg: "invalid TOML: " + msg}
		}
		return nil, &Error{File: p.source, Msg: "invalid TOML: " + strings.TrimPrefix(err.Error(), "toml: ")}
	}
	p.md = md

	cfg := &Config{Accounts: map[string]*Account{}, source: p.source}
	if !md.IsDefined("accounts") {
		if err := p.checkUnknown(); err != nil {
			return nil, err
		}
		return nil, &Error{File: p.source, Msg: "no accounts defined; add an [accounts.NAME] table with at least protocol, host, username and password_cmd or password_env"}
	}
	if typ := p.typeOf("accounts"); typ != "Hash" {
		msg := fmt.Sprintf("accounts must be a table of account tables such as [accounts.work], not %s", typeName(typ))
		if typ == "ArrayHash" {
			msg = "accounts must be a table of account tables: write [accounts.NAME], not [[accounts]]"
		}
		return nil, &Error{File: p.source, Line: p.line("accounts"), Msg: msg}
	}
	var tables map[string]toml.Primitive
	if err := md.PrimitiveDecode(top.Accounts, &tables); err != nil {
		// Unreachable: accounts is a table and values are Primitives.
		return nil, &Error{File: p.source, Line: p.line("accounts"), Msg: "invalid accounts table: " + strings.TrimPrefix(err.Error(), "toml: ")}
	}

	names := p.accountNames()
	raws := make(map[string]*rawAccount, len(names))
	for _, name := range names {
		if typ := p.typeOf("accounts", name); typ != "Hash" {
			return nil, &Error{File: p.source, Line: p.line("accounts", name), Account: name,
				Msg: fmt.Sprintf("must be a table of settings ([%s]), not %s", accountPath(name), typeName(typ))}
		}
		var r rawAccount
		if err := md.PrimitiveDecode(tables[name], &r); err != nil {
			// Unreachable: every field is a Primitive.
			return nil, &Error{File: p.source, Line: p.line("accounts", name), Account: name, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
		}
		raws[name] = &r
	}
	if err := p.checkUnknown(); err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, &Error{File: p.source, Line: p.line("accounts"), Msg: "no accounts defined; add an [accounts.NAME] table with at least protocol, host, username and password_cmd or password_env"}
	}

	for _, name := range names {
		a, err := p.account(name, raws[name])
		if err != nil {
			return nil, err
		}
		cfg.Accounts[name] = a
	}
	registerEnv(cfg.Accounts)
	return cfg, nil
}

// secretKey reports whether a key looks as if its value could be a
// secret: a password written into the file by mistake, say. The TOML
// decoder quotes pieces of a malformed value in its errors, which must not
// show such a value.
func secretKey(key string) bool {
	key = strings.ToLower(key)
	for _, s := range []string{"pass", "pwd", "secret", "token", "key", "cred"} {
		if strings.Contains(key, s) {
			return true
		}
	}
	return false
}

// accountNames returns the account names in the order they appear.
func (p *parser) accountNames() []string {
	var names []string
	seen := map[string]bool{}
	for _, k := range p.md.Keys() {
		if len(k) >= 2 && k[0] == "accounts" && !seen[k[1]] {
			seen[k[1]] = true
			names = append(names, k[1])
		}
	}
	return names
}

// checkUnknown reports the first unknown key in document order. A key is
// unknown if the decoder left it undecoded, or if it only matched a known
// key case-insensitively (TOML keys are case-sensitive, the decoder is not).
func (p *parser) checkUnknown() error {
	undecoded := map[string]bool{}
	for _, k := range p.md.Undecoded() {
		undecoded[k.String()] = true
	}
	for _, k := range p.md.Keys() {
		switch {
		case k[0] != "accounts":
			// Keys() omits implicit parents: [a.b] lists a.b but not a.
			if undecoded[k.String()] || len(k) == 1 {
				return &Error{File: p.source, Line: p.line(k[0]),
					Msg: fmt.Sprintf("unknown top-level key %q (known keys: accounts; settings go in [accounts.NAME] tables)%s", k[0], suggest(k[0], []string{"accounts"}))}
			}
		case len(k) >= 3 && !isKnownKey(k[2]):
			// Undecoded, or decoded only through the decoder's
			// case-insensitive field matching.
			return &Error{File: p.source, Line: p.line(k[:3]...), Account: k[1], Key: k[2],
				Msg: fmt.Sprintf("unknown key %q (known keys: %s)%s", k[2], strings.Join(knownKeys, ", "), suggest(k[2], knownKeys))}
		default:
			// accounts, accounts.NAME, or a value nested below a known
			// key, which is a type error reported later.
		}
	}
	return nil
}

// suggest returns `; did you mean "x"?` for the closest known key, or "".
func suggest(k string, known []string) string {
	best, bestD := "", 3
	lk := strings.ToLower(k)
	for _, c := range known {
		if d := editDistance(lk, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(`; did you mean %q?`, best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// line returns the 1-based line where key is defined, or 0.
func (p *parser) line(key ...string) int {
	if p.lines == nil {
		p.lines = newLineIndex(p.data)
	}
	return p.lines.find(key)
}

// typeName turns a MetaData.Type into words for error messages.
func typeName(t string) string {
	switch t {
	case "Hash":
		return "a table"
	case "ArrayHash":
		return "an array of tables"
	case "Array":
		return "an array"
	case "String":
		return "a string"
	case "Integer":
		return "an integer"
	case "Float":
		return "a float"
	case "Bool":
		return "a boolean"
	case "Datetime":
		return "a date/time"
	case "":
		return "nothing"
	}
	return strings.ToLower(t)
}

// accountDecoder decodes the settings of one account.
type accountDecoder struct {
	p    *parser
	name string
	set  map[string]bool // keys present in the file
	err  *Error          // first error
}

func (d *accountDecoder) errorf(key, format string, args ...any) *Error {
	line := 0
	if key != "" {
		line = d.p.line("accounts", d.name, key)
	}
	if line == 0 {
		line = d.p.line("accounts", d.name)
	}
	return &Error{File: d.p.source, Line: line, Account: d.name, Key: key, Msg: fmt.Sprintf(format, args...)}
}

// defined reports whether key is set, recording it in d.set.
func (d *accountDecoder) defined(key string) bool {
	if d.err != nil || !d.p.md.IsDefined("accounts", d.name, key) {
		return false
	}
	d.set[key] = true
	return true
}

func (d *accountDecoder) typ(key string) string {
	return d.p.typeOf("accounts", d.name, key)
}

// typeOf is MetaData.Type, except that it returns "Hash" for tables that
// are only defined implicitly (as the parent of [a.b] or a.b = 1), for
// which MetaData.Type returns "".
func (p *parser) typeOf(key ...string) string {
	t := p.md.Type(key...)
	if t == "" && p.md.IsDefined(key...) {
		return "Hash"
	}
	return t
}

func (d *accountDecoder) wrongType(key, want string) {
	d.err = d.errorf(key, "%s must be %s, not %s", key, want, typeName(d.typ(key)))
}

func (d *accountDecoder) str(prim toml.Primitive, key string, dst *string) {
	if !d.defined(key) {
		return
	}
	if d.typ(key) != "String" {
		d.wrongType(key, `a string (in "quotes")`)
		return
	}
	if err := d.p.md.PrimitiveDecode(prim, dst); err != nil {
		d.wrongType(key, "a string")
	}
}

func (d *accountDecoder) boolean(prim toml.Primitive, key string, dst *bool) {
	if !d.defined(key) {
		return
	}
	if d.typ(key) != "Bool" {
		d.wrongType(key, "true or false (without quotes)")
		return
	}
	if err := d.p.md.PrimitiveDecode(prim, dst); err != nil {
		d.wrongType(key, "true or false")
	}
}

func (d *accountDecoder) integer(prim toml.Primitive, key string, dst *int) {
	if !d.defined(key) {
		return
	}
	if d.typ(key) != "Integer" {
		d.wrongType(key, "an integer (without quotes)")
		return
	}
	var n int64
	if err := d.p.md.PrimitiveDecode(prim, &n); err != nil {
		d.wrongType(key, "an integer")
		return
	}
	if n < math.MinInt32 || n > math.MaxInt32 {
		d.err = d.errorf(key, "%s = %d is out of range", key, n)
		return
	}
	*dst = int(n)
}

// scalar decodes a string or integer setting.
func (d *accountDecoder) scalar(prim toml.Primitive, key string) (s string, n int64, isInt, ok bool) {
	if !d.defined(key) {
		return "", 0, false, false
	}
	switch d.typ(key) {
	case "String":
		if err := d.p.md.PrimitiveDecode(prim, &s); err == nil {
			return s, 0, false, true
		}
	case "Integer":
		if err := d.p.md.PrimitiveDecode(prim, &n); err == nil {
			return "", n, true, true
		}
	}
	return "", 0, false, false
}

func (d *accountDecoder) duration(prim toml.Primitive, key string, dst *time.Duration) {
	if !d.defined(key) {
		return
	}
	s, n, isInt, ok := d.scalar(prim, key)
	if !ok {
		d.wrongType(key, `a duration such as "60s" or "5m", or an integer number of seconds`)
		return
	}
	if isInt {
		if n < 0 {
			d.err = d.errorf(key, "%s = %d is negative; use a positive number of seconds", key, n)
			return
		}
		if n > math.MaxInt64/int64(time.Second) {
			d.err = d.errorf(key, "%s = %d seconds is too large", key, n)
			return
		}
		*dst = time.Duration(n) * time.Second
		return
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		d.err = d.errorf(key, `%s = %q is not a duration; use e.g. "60s", "5m" or "1h30m", or an integer number of seconds`, key, s)
		return
	}
	*dst = v
}

func (d *accountDecoder) size(prim toml.Primitive, key string, dst *int64) {
	if !d.defined(key) {
		return
	}
	s, n, isInt, ok := d.scalar(prim, key)
	if !ok {
		d.wrongType(key, `a size such as "2GiB" or "500MB", or an integer number of bytes`)
		return
	}
	if isInt {
		if n < 0 {
			d.err = d.errorf(key, "%s = %d is negative; use a size in bytes, or \"\" for unlimited", key, n)
			return
		}
		*dst = n
		return
	}
	v, err := ParseSize(s)
	if err != nil {
		d.err = d.errorf(key, "%s = %q: %v", key, s, err)
		return
	}
	*dst = v
}

// account decodes, defaults and validates one account.
func (p *parser) account(name string, r *rawAccount) (*Account, error) {
	d := &accountDecoder{p: p, name: name, set: map[string]bool{}}
	a := &Account{Name: name, source: p.source}

	d.str(r.Protocol, "protocol", &a.Protocol)
	d.str(r.Host, "host", &a.Host)
	d.integer(r.Port, "port", &a.Port)
	d.str(r.TLS, "tls", &a.TLS)
	d.str(r.Username, "username", &a.Username)
	d.str(r.PasswordCmd, "password_cmd", &a.PasswordCmd)
	d.str(r.PasswordEnv, "password_env", &a.PasswordEnv)
	d.str(r.Auth, "auth", &a.Auth)
	d.str(r.CAFile, "ca_file", &a.CAFile)
	d.boolean(r.TLSSkipVerify, "tls_skip_verify", &a.TLSSkipVerify)
	d.boolean(r.AllowPlaintext, "allow_plaintext", &a.AllowPlaintext)
	d.str(r.Expunge, "expunge", &a.Expunge)
	d.duration(r.PollInterval, "poll_interval", &a.PollInterval)
	d.duration(r.Timeout, "timeout", &a.Timeout)
	d.size(r.CacheMaxSize, "cache_max_size", &a.CacheMaxSize)
	d.boolean(r.DeleteAfterDownload, "delete_after_download", &a.DeleteAfterDownload)
	d.str(r.CacheKeyCmd, "cache_key_cmd", &a.CacheKeyCmd)
	d.integer(r.Connections, "connections", &a.Connections)
	if d.err != nil {
		return nil, d.err
	}
	if err := validate(a, d.set, p.source); err != nil {
		return nil, d.errorf(err.key, "%s", err.msg)
	}
	return a, nil
}

// quoteList renders ["a", "b"] as `"a", "b"`.
func quoteList(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}
