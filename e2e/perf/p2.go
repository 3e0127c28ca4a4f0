package perf

import (
	"fmt"
	"testing"
	"time"
)

// P2's goal: signed calls at ≥ 0.6 × mosquitto's QoS 1 round trips per
// second, with a p99 ≤ 2 × mosquitto's.
const (
	P2MinRatio  = 0.6
	P2MaxP99Mul = 2
)

// RecordP2 is P2: the signed calls P1 just measured (signed, devices
// devices through the whole path) against MQTT v5 QoS 1 request/response
// through mosquitto with as many devices, run now for d, right after P1 in
// the same benchmark so that machine noise hits both. It records the row
// and returns it. command reproduces it (e.g. "./scripts/bench.sh P1").
func RecordP2(tb testing.TB, signed LoadResult, devices int, d time.Duration, command string) Row {
	tb.Helper()
	mqtt := MQTTBaseline(tb, StartMosquitto(tb), devices, d)
	if mqtt.Failed > 0 {
		tb.Errorf("%d MQTT round trips failed, first: %v", mqtt.Failed, mqtt.FirstErr)
	}
	r := P2Row(signed, mqtt, devices)
	r.Command = command
	Record(tb, r)
	return r
}

// P2Row compares signed with mqtt by P2's goal.
func P2Row(signed, mqtt LoadResult, devices int) Row {
	r := Row{ID: "P2", What: fmt.Sprintf("signed calls/s through the whole path vs MQTT v5 QoS 1 request/response through mosquitto, %d devices", devices),
		Result: signed.Rate(), Unit: "calls/s", Baseline: "mosquitto + paho.golang, QoS 1, ResponseTopic + CorrelationData (B-mqtt)",
		Base: mqtt.Rate(), Goal: fmt.Sprintf("≥ %.1f × mosquitto's round trips/s, p99 ≤ %d × mosquitto's", P2MinRatio, P2MaxP99Mul)}
	if r.Base > 0 {
		r.Ratio = r.Result / r.Base
	}
	p99ok := signed.P99 <= P2MaxP99Mul*mqtt.P99
	r.Met = r.Base > 0 && r.Ratio >= P2MinRatio && p99ok && signed.Failed == 0 && mqtt.Failed == 0
	p99ratio := 0.0
	if mqtt.P99 > 0 {
		p99ratio = float64(signed.P99) / float64(mqtt.P99)
	}
	r.Notes = fmt.Sprintf("signed: %s. mqtt: %s. p99 signed / mqtt %.2f (goal ≤ %d)",
		loadNotes(signed, "calls"), loadNotes(mqtt, "round trips"), p99ratio, P2MaxP99Mul)
	return r
}
