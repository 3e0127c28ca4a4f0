//go:build !race

package jsonrpc

import (
	"encoding/json"
	"testing"

	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// Allocation counts are meaningless under the race detector, which allocates
// on its own; scripts/test.sh runs these in a pass without -race.

func TestClassifyDoesNotAllocate(t *testing.T) {
	msgs := [][]byte{
		[]byte(`{"jsonrpc":"2.0","method":"containers.list","params":{"all":true},"id":7}`),
		[]byte(`[{"jsonrpc":"2.0","result":[1,2,3],"id":1},{"jsonrpc":"2.0","result":"x","id":2}]`),
	}
	for _, m := range msgs {
		if n := testing.AllocsPerRun(100, func() { Classify(m); IsResponse(m) }); n != 0 {
			t.Errorf("Classify+IsResponse(%s): %v allocations", m, n)
		}
	}
}

// TestDecodeParamsAllocatesLikeUnmarshal: the strict walk allocates nothing
// of its own for an ordinary state.report (its maps have few keys).
func TestDecodeParamsAllocatesLikeUnmarshal(t *testing.T) {
	strict := testing.AllocsPerRun(100, func() {
		var p rpcproto.StateReportParams
		if err := DecodeParams(stateReport, &p); err != nil {
			t.Fatal(err)
		}
	})
	plain := testing.AllocsPerRun(100, func() {
		var p rpcproto.StateReportParams
		if err := json.Unmarshal(stateReport, &p); err != nil {
			t.Fatal(err)
		}
	})
	if strict > plain {
		t.Errorf("DecodeParams: %v allocations, json.Unmarshal %v", strict, plain)
	}
}
