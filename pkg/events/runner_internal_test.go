package events

import (
	"testing"
	"time"
)

func TestRetryDelayIsExponentialAndCapped(t *testing.T) {
	r := &Runner{cfg: RunnerConfig{RetryBase: time.Second, RetryMax: time.Minute}}
	for attempt, want := range map[int]time.Duration{
		1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 6: 32 * time.Second, 7: time.Minute, 100: time.Minute,
	} {
		if got := r.retryDelay(attempt); got != want {
			t.Errorf("retryDelay(%d) = %v, want %v", attempt, got, want)
		}
	}
}

// TestNakDelayCompensatesConsumerBackOff: with a BackOff list the server
// redelivers a NAK'd message delay + BackOff[i] - AckWait later (measured
// against nats-server 2.15: NAK 100ms on the 2nd delivery with BackOff
// [200ms 1s 2s] came back after 900ms), so the runner asks for less.
func TestNakDelayCompensatesConsumerBackOff(t *testing.T) {
	plain := limits{ackWait: 30 * time.Second}
	if got := plain.nakDelay(3, 4*time.Second); got != 4*time.Second {
		t.Errorf("without BackOff: nakDelay = %v, want 4s", got)
	}
	l := limits{ackWait: 30 * time.Second, backoff: []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute}}
	tests := []struct {
		attempt int
		want    time.Duration
		nak     time.Duration
	}{
		{1, time.Second, time.Second},            // BackOff[0] == AckWait: no offset
		{2, 2 * time.Second, time.Millisecond},   // offset 30s > wanted: the server's floor
		{2, 45 * time.Second, 15 * time.Second},  // 15s + 60s - 30s = 45s
		{3, 100 * time.Second, 10 * time.Second}, // 10s + 120s - 30s
		{9, 100 * time.Second, 10 * time.Second}, // beyond the list: its last entry
		{9, 5 * time.Minute, 5*time.Minute - 90*time.Second},
	}
	for _, tt := range tests {
		if got := l.nakDelay(tt.attempt, tt.want); got != tt.nak {
			t.Errorf("nakDelay(%d, %v) = %v, want %v", tt.attempt, tt.want, got, tt.nak)
		}
	}
	if got := l.ackDeadline(2); got != time.Minute {
		t.Errorf("ackDeadline(2) = %v, want 1m", got)
	}
}
