package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"mellium.im/xmpp/jid"
)

// accountConfig is one account in config.json. Passwords are never stored
// here: they come from a prompt, a file, an environment variable, or (once
// saved with --save-password) the account's encrypted store.
type accountConfig struct {
	JID       string `json:"jid"`
	Server    string `json:"server,omitempty"` // host:port; empty = SRV lookup
	DirectTLS bool   `json:"direct_tls,omitempty"`
	CAFile    string `json:"ca_file,omitempty"`
	TLS12     bool   `json:"tls12,omitempty"` // cap TLS at 1.2
	// Resource is the resource to ask the server for; a command's
	// --resource overrides it.
	Resource string `json:"resource,omitempty"`
	Default  bool   `json:"default,omitempty"`
	// Unencrypted records the explicit opt-out from encrypting secrets at
	// rest (for unattended bots); see SECURITY.md.
	Unencrypted bool `json:"unencrypted_store,omitempty"`
	// Policy is the default encryption policy ("plaintext", "prefer",
	// "require:ox", ...).
	Policy string `json:"policy,omitempty"`
	// Language of notices (BCP 47), default from $LANG.
	Language string `json:"language,omitempty"`
}

type config struct {
	Accounts []accountConfig `json:"accounts"`
	path     string
}

// configDir returns $BALCONY_CONFIG_DIR, else $XDG_CONFIG_HOME/balcony,
// else ~/.config/balcony.
func configDir() (string, error) {
	if d := os.Getenv("BALCONY_CONFIG_DIR"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "balcony"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cannot find the configuration directory: %w", err)
	}
	return filepath.Join(home, ".config", "balcony"), nil
}

func loadConfig() (*config, error) {
	dir, err := configDir()
	if err != nil {
		return nil, err
	}
	cfg := &config{path: filepath.Join(dir, "config.json")}
	b, err := os.ReadFile(cfg.path)
	if errors.Is(err, os.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, cfg); err != nil {
		return nil, fmt.Errorf("%s is not valid: %w", cfg.path, err)
	}
	return cfg, nil
}

// save writes the configuration atomically (temporary file, fsync, rename)
// with mode 0600 in a 0700 directory.
func (c *config) save() error {
	sort.SliceStable(c.Accounts, func(i, j int) bool { return c.Accounts[i].JID < c.Accounts[j].JID })
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(c.path, append(b, '\n'), 0o600)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// account finds the account named by j ("" = the default, or the only one).
func (c *config) account(name string) (*accountConfig, error) {
	if len(c.Accounts) == 0 {
		return nil, &usageError{msg: "no account configured", hint: "add one with: balcony account add you@example.org"}
	}
	if name == "" {
		for i := range c.Accounts {
			if c.Accounts[i].Default {
				return &c.Accounts[i], nil
			}
		}
		if len(c.Accounts) == 1 {
			return &c.Accounts[0], nil
		}
		return nil, &usageError{msg: "several accounts are configured", hint: "choose one with --account JID or mark one as default: balcony account default JID"}
	}
	j, err := jid.Parse(name)
	if err != nil {
		return nil, &usageError{msg: fmt.Sprintf("invalid account JID %q: %v", name, err)}
	}
	for i := range c.Accounts {
		if c.Accounts[i].JID == j.Bare().String() {
			return &c.Accounts[i], nil
		}
	}
	return nil, &usageError{msg: "no account " + j.Bare().String(), hint: "list accounts with: balcony account list"}
}

// dataDir returns $BALCONY_DATA_DIR, else $XDG_DATA_HOME/balcony, else
// ~/.local/share/balcony. Each account has a subdirectory for its store.
func dataDir() (string, error) {
	if d := os.Getenv("BALCONY_DATA_DIR"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "balcony"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cannot find the data directory: %w", err)
	}
	return filepath.Join(home, ".local", "share", "balcony"), nil
}

// currentAccount loads the configuration and returns the account the
// command acts for (--account, else the default or only one). An account
// named by --account that is not configured but that a running balcony
// serve holds (its control socket is in the data directory, as for the
// accounts of a PostgreSQL store) is returned with its JID alone, so that
// the commands acting through the control socket work for it.
func currentAccount(e *env) (*accountConfig, error) {
	cfg, err := loadConfig()
	if err != nil {
		return nil, err
	}
	a, err := cfg.account(e.account)
	if err != nil && e.account != "" {
		if j, perr := jid.Parse(e.account); perr == nil {
			served := &accountConfig{JID: j.Bare().String()}
			if p, cerr := controlPath(served); cerr == nil {
				if fi, serr := os.Lstat(p); serr == nil && fi.Mode()&os.ModeSocket != 0 {
					return served, nil
				}
			}
		}
	}
	return a, err
}
