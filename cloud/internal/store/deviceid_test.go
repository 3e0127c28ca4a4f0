package store_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestDeviceIDCheckMatchesGo: the CHECK constraint on devices.id (migration
// 004) gives the same answer as rpcproto.ValidDeviceID, id by id: every id Go
// accepts can be stored, every one it refuses is refused by the constraint
// itself (SQLSTATE 23514 on devices_id_check), not by some other error.
func TestDeviceIDCheckMatchesGo(t *testing.T) {
	st, ctx := migrated(t)

	var def string
	if err := st.Pool().QueryRow(ctx, `SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'devices_id_check'`).Scan(&def); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(def, rpcproto.DeviceIDPattern) || !strings.Contains(def, strconv.Itoa(rpcproto.DeviceIDMaxLen)) {
		t.Fatalf("devices_id_check is %s; want rpcproto.DeviceIDPattern %s and the length %d", def, rpcproto.DeviceIDPattern, rpcproto.DeviceIDMaxLen)
	}

	label := func(n int) string { return strings.Repeat("b", n) }
	longest := label(63) + "." + label(63) + "." + label(63) + "." + label(61)
	ids := []string{
		"dev-1", "a_b", "a", "1pi", "pi.kitchen.local", "Pi.Kitchen.LOCAL", "10.0.0.1", "a-.b-", "a_.b_",
		"", "-a", "_a", "a.-b", "a._b", ".a", "a.", "a..b", ".", "a\n", "a\nb", "\na",
		label(64), label(65), "c." + label(64), "c." + label(65),
		longest, longest + "b", strings.Repeat("c.", 126) + "c", strings.Repeat("c.", 126) + "cd",
		"grüß.local", "é", "\u212a", "ａ", // non-ASCII letters, the Kelvin sign among them
	}
	// Every ASCII byte, first, inside and last; NUL cannot be stored in
	// text at all, and a lone byte above 0x7f is not UTF-8.
	for c := 1; c < 128; c++ {
		s := string(rune(c))
		ids = append(ids, s, s+"a", "a"+s+"a", "a.a"+s)
	}
	r := rand.New(rand.NewPCG(3, 4))
	const alphabet = "aZ9-_.-.%*"
	for range 300 {
		b := make([]byte, 1+r.IntN(10))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		ids = append(ids, string(b))
	}

	seen := map[string]bool{}
	accepted := 0
	for i, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		_, err := st.Pool().Exec(ctx, `INSERT INTO devices (id, org_id, status) VALUES ($1, (SELECT id FROM orgs WHERE name = 'default'), 'pending')`, id)
		want := rpcproto.ValidDeviceID(id)
		name := fmt.Sprintf("#%d %q", i, id)
		switch {
		case want && err != nil:
			t.Errorf("%s: Go accepts it, PostgreSQL refuses: %v", name, err)
		case want:
			accepted++
		case err == nil:
			t.Errorf("%s: Go refuses it, PostgreSQL stored it", name)
		default:
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "23514" || pe.ConstraintName != "devices_id_check" {
				t.Errorf("%s: refused by %v, want the devices_id_check constraint", name, err)
			}
		}
	}
	if accepted < 20 || accepted == len(seen) {
		t.Fatalf("%d of %d ids accepted: the cases do not exercise both answers", accepted, len(seen))
	}
	var n int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM devices`).Scan(&n); err != nil || n != accepted {
		t.Fatalf("%d devices stored (%v), want %d", n, err, accepted)
	}
}
