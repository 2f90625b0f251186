module mailfs

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/emersion/go-imap/v2 v2.0.0-beta.8
	github.com/emersion/go-message v0.18.2
	github.com/emersion/go-sasl v0.0.0-20241020182733-b788ff22d5a6
	github.com/hanwen/go-fuse/v2 v2.12.1
	golang.org/x/sys v0.41.0
)

require (
	github.com/knadh/go-pop3 v1.0.2 // indirect
	golang.org/x/text v0.14.0 // indirect
)
