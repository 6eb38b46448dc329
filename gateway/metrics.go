package gateway

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are an L2 node's Prometheus collectors. Metrics also implements
// buffer.Observer.
type Metrics struct {
	Step         *prometheus.HistogramVec // seconds from request to answer, by kind (step, direct) and status class
	FsyncTime    prometheus.Histogram
	FsyncBatch   prometheus.Histogram
	BatchSize    prometheus.Histogram
	FinalityTime prometheus.Histogram
	Queue        prometheus.Gauge

	recent struct { // the latest samples, for GET /v1/network
		sync.Mutex
		steps, finality []Sample
	}
}

// Sample is one measurement: when (Unix ms) and how long (ms).
type Sample struct {
	T  int64   `json:"t"`
	MS float64 `json:"ms"`
}

// keepSamples is how many of each kind of sample Recent returns.
const keepSamples = 240

func (m *Metrics) sample(to *[]Sample, d time.Duration) {
	m.recent.Lock()
	defer m.recent.Unlock()
	*to = append(*to, Sample{T: time.Now().UnixMilli(), MS: float64(d.Microseconds()) / 1000})
	if len(*to) > 2*keepSamples {
		*to = append((*to)[:0], (*to)[len(*to)-keepSamples:]...)
	}
}

// Recent returns the latest answered steps and session finalities.
func (m *Metrics) Recent() (steps, finality []Sample) {
	m.recent.Lock()
	defer m.recent.Unlock()
	last := func(s []Sample) []Sample { return append([]Sample{}, s[max(0, len(s)-keepSamples):]...) }
	return last(m.recent.steps), last(m.recent.finality)
}

// NewMetrics creates and registers the collectors.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	lat := prometheus.ExponentialBuckets(0.0001, 2, 18) // 100µs .. 13s
	m := &Metrics{
		Step: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "duet", Subsystem: "l2",
			Name: "step_seconds", Help: "Time from request to answer of a signed op.", Buckets: lat}, []string{"kind", "status"}),
		FsyncTime: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "duet", Subsystem: "wal",
			Name: "fsync_seconds", Help: "Time of one WAL fsync (group commit).", Buckets: lat}),
		FsyncBatch: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "duet", Subsystem: "wal",
			Name: "fsync_records", Help: "Records made durable by one fsync.", Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "duet", Subsystem: "l1",
			Name: "batch_bundles", Help: "Bundles per L1 transaction.", Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		FinalityTime: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "duet", Subsystem: "l1",
			Name: "finality_seconds", Help: "Time from commit request to L1 verdict.", Buckets: lat}),
		Queue: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "duet", Subsystem: "l1",
			Name: "queue_bundles", Help: "Bundles waiting to be submitted to L1."}),
	}
	for _, c := range []prometheus.Collector{m.Step, m.FsyncTime, m.FsyncBatch, m.BatchSize, m.FinalityTime, m.Queue} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) Fsync(d time.Duration, records int) {
	m.FsyncTime.Observe(d.Seconds())
	m.FsyncBatch.Observe(float64(records))
}
func (m *Metrics) Batch(bundles int) { m.BatchSize.Observe(float64(bundles)) }
func (m *Metrics) Finality(d time.Duration) {
	m.FinalityTime.Observe(d.Seconds())
	m.sample(&m.recent.finality, d)
}
func (m *Metrics) QueueDepth(n int) { m.Queue.Set(float64(n)) }
