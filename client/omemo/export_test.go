package omemo

import (
	"context"

	engine "github.com/balcony-im/balcony/omemo"
)

// DropSession forgets the session with a device without telling it, as a
// restored backup or a lost store would.
func (d *Device) DropSession(g engine.Generation, a engine.Address) error {
	return d.op(context.Background(), func() (bool, error) { return false, d.mgrs[g].DeleteSession(a) })
}
