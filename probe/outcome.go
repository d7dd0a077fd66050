package probe

import (
	"fmt"
)

// Outcome is the single verdict of one check run. Every run ends in exactly
// one outcome, decided in one place (checks.Classify) from the error chain
// and the phase the run reached (Result.Connected). Path outcomes (timeout,
// refused, unreachable) describe only what happened before the transport
// connected; once it did, every failure is a service outcome
// (service_timeout, protocol_error, tls_error, auth_error).
type Outcome uint8

// The outcomes of DESIGN.md. The zero value is OutcomeOK only by accident of
// ordering; a Result always sets its outcome explicitly. New outcomes are
// appended: the order is the metric contract's.
const (
	// OutcomeOK: the protocol answered as expected.
	OutcomeOK Outcome = iota
	// OutcomeTimeout: no answer before the deadline, typically a firewall DROP.
	OutcomeTimeout
	// OutcomeRefused: TCP RST or ICMP port unreachable; the host was reached
	// but nothing listens there, or a firewall REJECTs.
	OutcomeRefused
	// OutcomeUnreachable: ICMP host/net unreachable or admin-prohibited.
	OutcomeUnreachable
	// OutcomeDNSError: the target name did not resolve.
	OutcomeDNSError
	// OutcomeTLSError: TLS handshake or certificate failure.
	OutcomeTLSError
	// OutcomeAuthError: the service answered but refused the credentials.
	OutcomeAuthError
	// OutcomeProtocolError: something answered, but not the expected protocol.
	OutcomeProtocolError
	// OutcomeNoResponse: a UDP datagram went out and nothing came back
	// (open or filtered).
	OutcomeNoResponse
	// OutcomeServiceTimeout: the transport connected (TCP established, or
	// for UDP a first answer came), then the service did not finish before
	// the deadline. The path is open: never a path verdict.
	OutcomeServiceTimeout
	// OutcomeLocalError: this machine could not run the check (no ICMP
	// socket permission, a source address that is not local, no address
	// of the wanted family, a secret unreadable at run time). It is no
	// verdict about the network and fails whatever the expectation.
	OutcomeLocalError

	numOutcomes
)

var outcomeNames = [numOutcomes]string{
	OutcomeOK:             "ok",
	OutcomeTimeout:        "timeout",
	OutcomeRefused:        "refused",
	OutcomeUnreachable:    "unreachable",
	OutcomeDNSError:       "dns_error",
	OutcomeTLSError:       "tls_error",
	OutcomeAuthError:      "auth_error",
	OutcomeProtocolError:  "protocol_error",
	OutcomeNoResponse:     "no_response",
	OutcomeServiceTimeout: "service_timeout",
	OutcomeLocalError:     "local_error",
}

var outcomeMeanings = [numOutcomes]string{
	OutcomeOK:             "the protocol answered as expected",
	OutcomeTimeout:        "no answer before the deadline: most often a firewall silently dropping the packets between here and there",
	OutcomeRefused:        "the host answered but nothing listens on the port, or a firewall rejects it",
	OutcomeUnreachable:    "an ICMP host/net unreachable or admin-prohibited came back: routing problem or a firewall REJECT",
	OutcomeDNSError:       "the target name did not resolve",
	OutcomeTLSError:       "the TLS handshake or the certificate failed (expired, wrong host, unknown CA, version)",
	OutcomeAuthError:      "the path is open and the service answered, but it refused the credentials",
	OutcomeProtocolError:  "something answered, but not the expected protocol: a different service on the port?",
	OutcomeNoResponse:     "the UDP datagram got no answer: the port is open or filtered, nothing proves which",
	OutcomeServiceTimeout: "the path is open and the service accepted the connection, but it did not finish before the deadline: a hung or overloaded service",
	OutcomeLocalError:     "this machine could not run the check (permission, source address, address family, secret): no verdict about the network",
}

// Outcomes lists every outcome in a stable order (for one-hot metrics, docs
// and tests).
func Outcomes() []Outcome {
	out := make([]Outcome, numOutcomes)
	for i := range out {
		out[i] = Outcome(i)
	}
	return out
}

// String returns the outcome's name as used in metrics, JSON and config.
func (o Outcome) String() string {
	if o < numOutcomes {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Meaning is a one-line English explanation of what the outcome usually means.
func (o Outcome) Meaning() string {
	if o < numOutcomes {
		return outcomeMeanings[o]
	}
	return ""
}

// ParseOutcome is the inverse of String.
func ParseOutcome(s string) (Outcome, error) {
	for i, n := range outcomeNames {
		if n == s {
			return Outcome(i), nil
		}
	}
	return 0, fmt.Errorf("unknown outcome %q", s)
}

// MarshalText implements encoding.TextMarshaler.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (o *Outcome) UnmarshalText(b []byte) error {
	v, err := ParseOutcome(string(b))
	if err != nil {
		return err
	}
	*o = v
	return nil
}
