package main

import "context"

// The tables of the command: every subcommand, every request a running
// listener serves on its control socket, and the mechanisms each
// connected session sets up, each in one place.

// commands maps a subcommand's name to its entry.
var commands map[string]*command

// controlHandlers maps a control request's name to its handler.
var controlHandlers map[string]controlHandler

// mechanismSetups are run for every connected session, in order.
var mechanismSetups []func(ctx context.Context, s *session) error

// The tables are filled in init: the commands' run functions refer back to
// them (help, chat), which a variable's initializer may not.
func init() {
	commands = map[string]*command{}
	for _, c := range []*command{
		accountCommand,
		chatCommand,
		esessionCommand,
		historyCommand,
		keysCommand,
		listenCommand,
		serveCommand,
		otrCommand,
		omemoCommand,
		oxCommand,
		policyCommand,
		rawCommand,
		sendCommand,
		statusCommand,
		trustCommand,
		uiCommand,
	} {
		if commands[c.name] != nil {
			panic("duplicate command " + c.name)
		}
		commands[c.name] = c
	}
	controlHandlers = map[string]controlHandler{
		"esession": handleESession,
		"otr":      handleOTR,
		"omemo":    controlOMEMO,
		"ox":       controlOX,
		"raw":      controlRaw,
		"send":     controlSend,
		"status":   controlStatus,
	}
	mechanismSetups = []func(ctx context.Context, s *session) error{
		setupESession,
		setupOTR,
		setupOX,
		setupOMEMO,
	}
}
