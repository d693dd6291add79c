package tunnel

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the tunnels' Prometheus series, labelled per tunnel by its
// local port and file system. One Metrics serves many tunnels; a tunnel's
// series are removed when it is closed so churn does not grow them.
type Metrics struct {
	bytes    *prometheus.CounterVec
	active   *prometheus.GaugeVec
	accepted *prometheus.CounterVec
	redials  *prometheus.CounterVec
	errors   *prometheus.CounterVec
	tunnels  prometheus.Gauge
}

// Label values of the direction label.
const (
	dirToServer   = "to_server"
	dirFromServer = "from_server"
)

// Label values of the kind label of the errors counter.
const (
	errDial      = "dial"
	errHandshake = "handshake"
	errIO        = "io"
	errAccept    = "accept"
)

// NewMetrics makes the series and registers them with reg; a nil reg leaves
// them unregistered (they still count).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	labels := []string{"port", "file_system"}
	m := &Metrics{
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ec2csi", Subsystem: "tunnel", Name: "bytes_total",
			Help: "Plaintext bytes carried, by direction (to_server, from_server).",
		}, append(labels, "direction")),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "ec2csi", Subsystem: "tunnel", Name: "connections_active",
			Help: "Client connections being carried now.",
		}, labels),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ec2csi", Subsystem: "tunnel", Name: "connections_total",
			Help: "Client connections accepted.",
		}, labels),
		redials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ec2csi", Subsystem: "tunnel", Name: "redials_total",
			Help: "Upstream dials after the tunnel's first, each following a lost or failed connection.",
		}, labels),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ec2csi", Subsystem: "tunnel", Name: "errors_total",
			Help: "Failures by kind: dial, handshake (TLS, including certificate checks), io, accept.",
		}, append(labels, "kind")),
		tunnels: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ec2csi", Subsystem: "tunnel", Name: "tunnels",
			Help: "Tunnels open in this process.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.bytes, m.active, m.accepted, m.redials, m.errors, m.tunnels} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// tunnelMetrics are one tunnel's series, resolved once so the data path
// never looks up labels.
type tunnelMetrics struct {
	parent                *Metrics
	port, fs              string
	toServer, fromServer  prometheus.Counter
	active                prometheus.Gauge
	accepted, redials     prometheus.Counter
	dialErr, handshakeErr prometheus.Counter
	ioErr, acceptErr      prometheus.Counter
}

func (m *Metrics) forTunnel(port, fs string) *tunnelMetrics {
	return &tunnelMetrics{
		parent:       m,
		port:         port,
		fs:           fs,
		toServer:     m.bytes.WithLabelValues(port, fs, dirToServer),
		fromServer:   m.bytes.WithLabelValues(port, fs, dirFromServer),
		active:       m.active.WithLabelValues(port, fs),
		accepted:     m.accepted.WithLabelValues(port, fs),
		redials:      m.redials.WithLabelValues(port, fs),
		dialErr:      m.errors.WithLabelValues(port, fs, errDial),
		handshakeErr: m.errors.WithLabelValues(port, fs, errHandshake),
		ioErr:        m.errors.WithLabelValues(port, fs, errIO),
		acceptErr:    m.errors.WithLabelValues(port, fs, errAccept),
	}
}

// drop removes the tunnel's series.
func (t *tunnelMetrics) drop() {
	m := t.parent
	for _, d := range []string{dirToServer, dirFromServer} {
		m.bytes.DeleteLabelValues(t.port, t.fs, d)
	}
	m.active.DeleteLabelValues(t.port, t.fs)
	m.accepted.DeleteLabelValues(t.port, t.fs)
	m.redials.DeleteLabelValues(t.port, t.fs)
	for _, k := range []string{errDial, errHandshake, errIO, errAccept} {
		m.errors.DeleteLabelValues(t.port, t.fs, k)
	}
}
