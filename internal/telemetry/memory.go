package telemetry

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// NewMemoryLimit returns the gauge facestream_memory_limit_bytes: the
// memory this process may use — its cgroup's limit (memory.max, or v1's
// memory.limit_in_bytes) when it has one, otherwise the machine's memory.
// process_resident_memory_bytes ÷ this is the memory use the alert
// FacestreamMemoryHigh watches (> 85 %).
func NewMemoryLimit() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "facestream_memory_limit_bytes",
		Help: "Memory this process may use: its cgroup memory limit, or the machine's memory when there is none.",
	}, func() float64 { return float64(memoryLimit()) })
}

func memoryLimit() int64 {
	total := machineMemory()
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err == nil && n > 0 && (total == 0 || n < total) {
			return n
		}
	}
	return total
}

// machineMemory is MemTotal of /proc/meminfo in bytes (0 when unknown).
func machineMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
