package devstack

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"

	"github.com/loom-gateway/loom/deploy/freeport"
)

// PortsFile, in the state directory, keeps the addresses a run listened on,
// by flag name (listen, mock-addr, ...): the next run takes them again, so
// the exported OPENAI_BASE_URL and the psql line of the last banner keep
// working across restarts even when a default was taken and a free port
// was used instead. A flag given on the command line wins over it; an
// address kept here that is taken now falls back to the flag's default,
// then to a free port. Removing the file (or make clean) forgets them.
const PortsFile = "ports.json"

// ports is what PortsFile holds.
type ports map[string]string

func loadPorts(dir string) (ports, error) {
	b, err := os.ReadFile(filepath.Join(dir, PortsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return ports{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kept ports: %w", err)
	}
	var p ports
	if err := json.Unmarshal(b, &p); err != nil {
		// Damaged: forget it rather than refuse to start; it is rewritten.
		return ports{}, nil
	}
	return p, nil
}

func (p ports) save(dir string) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, PortsFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("keep ports: %w", err)
	}
	return nil
}

// pickKept is pickAddr for the address of flag: the one kept from the
// last run first, unless the flag was given; it records the choice for
// savePorts.
func (p *Plan) pickKept(flag, what, want string) (string, error) {
	if p.chosen == nil {
		p.chosen = ports{}
	}
	if kept, ok := p.kept[flag]; ok && !p.explicit[flag] && kept != want && !p.picked[kept] {
		if _, err := freeport.On(kept); err == nil {
			p.markPicked(kept)
			p.chosen[flag] = kept
			return kept, nil
		}
		p.Notes = append(p.Notes, fmt.Sprintf("%s, kept from the last run for %s, is in use now", kept, what))
	}
	addr, err := p.pickAddr(what, want)
	if err != nil {
		return "", err
	}
	if !p.explicit[flag] {
		p.chosen[flag] = addr
	}
	return addr, nil
}

// savePorts writes the kept ports with this run's choices; the ones this
// run did not use (the mock's, with a real upstream) stay as they were.
func (p *Plan) savePorts(dir string) error {
	all := maps.Clone(p.kept)
	if all == nil {
		all = ports{}
	}
	maps.Copy(all, p.chosen)
	return all.save(dir)
}
