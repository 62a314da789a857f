module github.com/balcony-im/balcony/examples/psk

go 1.26.0

require (
	github.com/balcony-im/balcony v0.0.0
	mellium.im/xmpp v0.22.0
)

require (
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/mod v0.42.0 // indirect
	golang.org/x/net v0.61.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	golang.org/x/tools v0.52.0 // indirect
	mellium.im/reader v0.1.0 // indirect
	mellium.im/sasl v0.3.2 // indirect
	mellium.im/xmlstream v0.15.4 // indirect
)

replace github.com/balcony-im/balcony => ../..
