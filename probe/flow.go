package probe

import (
	"fmt"
	"strconv"
	"strings"
)

// Protocol is the transport of a flow: tcp, udp or icmp.
type Protocol string

// The transports a flow can use.
const (
	TCP  Protocol = "tcp"
	UDP  Protocol = "udp"
	ICMP Protocol = "icmp"
)

// Valid reports whether p is one of the known transports.
func (p Protocol) Valid() bool { return p == TCP || p == UDP || p == ICMP }

// Requirement says whether a flow is always needed.
type Requirement string

// The requirement levels of a catalog flow.
const (
	Required    Requirement = "required"
	Optional    Requirement = "optional"
	Conditional Requirement = "conditional" // needed when Flow.Condition holds
)

// Valid reports whether r is a known requirement level.
func (r Requirement) Valid() bool { return r == Required || r == Optional || r == Conditional }

// PortKind tells a fixed port or range from ports that cannot be checked
// directly.
type PortKind uint8

// Port kinds.
const (
	PortFixed     PortKind = iota // Low..High (Low == High for one port)
	PortDynamic                   // "dynamic": chosen at run time by the product
	PortEphemeral                 // "ephemeral": the OS ephemeral range
)

// PortSpec is one item of a flow's port list: a port, a range, or a marker
// for dynamic or ephemeral ports. Its text form (YAML, JSON strings, CLI) is
// "389", "6910-6930", "dynamic" or "ephemeral".
type PortSpec struct {
	Kind      PortKind
	Low, High int
}

// Checkable reports whether a check can target this port spec directly.
func (p PortSpec) Checkable() bool { return p.Kind == PortFixed }

// IsRange reports whether the spec covers more than one port.
func (p PortSpec) IsRange() bool { return p.Kind == PortFixed && p.High > p.Low }

func (p PortSpec) String() string {
	switch p.Kind {
	case PortDynamic:
		return "dynamic"
	case PortEphemeral:
		return "ephemeral"
	}
	if p.High > p.Low {
		return fmt.Sprintf("%d-%d", p.Low, p.High)
	}
	return strconv.Itoa(p.Low)
}

// ParsePortSpec parses the text form of a PortSpec and checks that every
// port lies within 1..65535 and that a range is not reversed.
func ParsePortSpec(s string) (PortSpec, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "dynamic":
		return PortSpec{Kind: PortDynamic}, nil
	case "ephemeral":
		return PortSpec{Kind: PortEphemeral}, nil
	}
	lo, hi, isRange := strings.Cut(s, "-")
	l, err := parsePort(lo)
	if err != nil {
		return PortSpec{}, err
	}
	h := l
	if isRange {
		if h, err = parsePort(hi); err != nil {
			return PortSpec{}, err
		}
		if h < l {
			return PortSpec{}, fmt.Errorf("port range %q is reversed", s)
		}
	}
	return PortSpec{Kind: PortFixed, Low: l, High: h}, nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("port %q is not a number, a LOW-HIGH range, \"dynamic\" or \"ephemeral\"", s)
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d is outside 1..65535", n)
	}
	return n, nil
}

// MarshalText implements encoding.TextMarshaler.
func (p PortSpec) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *PortSpec) UnmarshalText(b []byte) error {
	v, err := ParsePortSpec(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// Role is a party of a product's flows (an appliance, a hypervisor host, a
// cluster node, an administrator's browser...).
type Role struct {
	Name        string `yaml:"name" json:"name"`
	Description string `yaml:"description" json:"description"`
}

// Flow is one row of a vendor's port table: who talks to whom, over which
// transport and ports, and why.
type Flow struct {
	Product     string      `json:"product"`
	ID          string      `json:"id"`
	Source      string      `json:"source"`
	Destination string      `json:"destination"`
	Hostname    string      `json:"hostname"` // a fixed external name instead of a destination role's hosts
	Protocol    Protocol    `json:"protocol"`
	Ports       []PortSpec  `json:"ports"`
	Purpose     string      `json:"purpose"`
	Required    Requirement `json:"required"`
	Condition   string      `json:"condition"`
	Footnotes   []string    `json:"footnotes"`
	Section     string      `json:"section"`
	App         string      `json:"app"`       // application protocol hint: ldap, ntp, https, ...
	Revisions   []string    `json:"revisions"` // ids of the product's documents that list the flow
	Note        string      `json:"note"`
	// Configurable says the vendor documents this port as a default that
	// can be changed, so a site may need to override it.
	Configurable bool `json:"configurable"`
	// Printed is what the documents print where flowprobe checks a
	// corrected transport or port (see Printed); empty otherwise.
	Printed []Printed `json:"printed"`

	// File and Line locate the flow in its catalog file, for messages.
	File string `json:"-"`
	Line int    `json:"-"`
}

// Document is one vendor document (one revision or language of it) that a
// product's flows were read from.
type Document struct {
	ID       string `yaml:"id" json:"id"`             // e.g. "en", "ja"; what Flow.Revisions name
	File     string `yaml:"file" json:"file"`         // file name of the extracted text
	Title    string `yaml:"title" json:"title"`       // the document's own title
	Language string `yaml:"language" json:"language"` // BCP 47 language tag
}

// Product is one vendor product's catalog: its roles and flows.
type Product struct {
	Name      string     // e.g. "sios-lifekeeper"
	Title     string     // e.g. "SIOS LifeKeeper for Linux"
	Document  []string   // the file names of Documents
	Documents []Document // the source documents the flows were read from
	Roles     []Role
	Flows     []Flow
}

// Role returns the declared role with the given name.
func (p *Product) Role(name string) (Role, bool) {
	for _, r := range p.Roles {
		if r.Name == name {
			return r, true
		}
	}
	return Role{}, false
}

// Flow returns the flow with the given id.
func (p *Product) Flow(id string) (*Flow, bool) {
	for i := range p.Flows {
		if p.Flows[i].ID == id {
			return &p.Flows[i], true
		}
	}
	return nil, false
}

// Printed is what a vendor document prints for a flow where that differs
// from what flowprobe checks: a typo of a port, or a transport the service
// does not use. The flow checks the corrected value; the printed one is
// kept so that a reader can match the flow to the document.
type Printed struct {
	// Revision is the document id that prints this value; "" for every
	// document of the flow.
	Revision string
	Protocol Protocol
	Ports    []PortSpec
}

// String is the printed transport and ports, as "udp/25" or
// "tcp/443,5288,5299,5230".
func (p Printed) String() string {
	ports := make([]string, len(p.Ports))
	for i, ps := range p.Ports {
		ports[i] = ps.String()
	}
	return string(p.Protocol) + "/" + strings.Join(ports, ",")
}

// Describe is the sentence shown beside a flow: "vendor table prints
// udp/25", or "vendor table (ja) prints tcp/350" for one revision.
func (p Printed) Describe() string {
	if p.Revision != "" {
		return "vendor table (" + p.Revision + ") prints " + p.String()
	}
	return "vendor table prints " + p.String()
}

// MarshalText implements encoding.TextMarshaler: "udp/25", or "ja:
// tcp/350" for one revision.
func (p Printed) MarshalText() ([]byte, error) {
	if p.Revision != "" {
		return []byte(p.Revision + ": " + p.String()), nil
	}
	return []byte(p.String()), nil
}

// ParsePrinted parses "PROTO/PORT[,PORT...]" as printed by revision rev
// ("" for every revision).
func ParsePrinted(rev, s string) (Printed, error) {
	proto, list, ok := strings.Cut(strings.TrimSpace(s), "/")
	p := Printed{Revision: rev, Protocol: Protocol(proto)}
	if !ok || !p.Protocol.Valid() || p.Protocol == ICMP {
		return Printed{}, fmt.Errorf("printed %q is not PROTOCOL/PORT[,PORT...] with protocol tcp or udp", s)
	}
	for _, item := range strings.Split(list, ",") {
		ps, err := ParsePortSpec(item)
		if err != nil {
			return Printed{}, fmt.Errorf("printed %q: %w", s, err)
		}
		p.Ports = append(p.Ports, ps)
	}
	return p, nil
}

// PrintedFor returns what revision rev prints for the flow: its Printed
// entry for rev (or for every revision), else the flow's own transport and
// ports.
func (f *Flow) PrintedFor(rev string) (Protocol, []PortSpec) {
	for _, p := range f.Printed {
		if p.Revision == "" || p.Revision == rev {
			return p.Protocol, p.Ports
		}
	}
	return f.Protocol, f.Ports
}

// PrintedNote is the flow's printed forms as one sentence ("" when the
// document prints what is checked).
func (f *Flow) PrintedNote() string {
	parts := make([]string, len(f.Printed))
	for i, p := range f.Printed {
		parts[i] = p.Describe()
	}
	return strings.Join(parts, "; ")
}
