package report

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Sanitize makes text a peer supplied safe to print on a terminal: every
// C0 control character but tab, DEL, every C1 control character and every
// byte that is not UTF-8 becomes a visible escape (\n, \r, \x1b, \u009b,
// \xff), so an escape sequence from a peer is printed, never obeyed. Text
// without such characters is returned unchanged.
func Sanitize(s string) string {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if needsEscape(r, size) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case !needsEscape(r, size):
			b.WriteString(s[i : i+size])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == utf8.RuneError:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += size
	}
	return b.String()
}

// needsEscape reports whether the rune r, size bytes long in its string,
// must not reach a terminal raw.
func needsEscape(r rune, size int) bool {
	switch {
	case r == utf8.RuneError && size == 1: // not UTF-8
		return true
	case r == '\t':
		return false
	case r < 0x20, r == 0x7f: // C0, DEL
		return true
	case r >= 0x80 && r <= 0x9f: // C1
		return true
	}
	return false
}

// markdownEscaper makes text safe for a Markdown table cell (and for
// headings and list items): a backslash or pipe cannot end the cell, a
// line break cannot end the row, and < and > cannot open HTML.
var markdownEscaper = strings.NewReplacer(
	`\`, `\\`, "|", `\|`, "<", "&lt;", ">", "&gt;",
	"\r\n", " ", "\n", " ", "\r", "",
)

// mdCell escapes text for Markdown. Text a peer supplied goes through
// Sanitize first: mdCell keeps other control characters as they are.
func mdCell(s string) string { return markdownEscaper.Replace(s) }

// writeJSON writes v as indented JSON, the form of every JSON report.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeJSONList writes the n elements elem returns as one indented JSON
// array, byte for byte what writeJSON writes for the slice of them, one
// element at a time: a report of tens of thousands of results is never
// held, encoded and re-indented as one buffer.
func writeJSONList(w io.Writer, n int, elem func(i int) any) error {
	if n == 0 {
		_, err := io.WriteString(w, "[]\n")
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString("[\n")
	for i := range n {
		b, err := json.MarshalIndent(elem(i), "  ", "  ")
		if err != nil {
			return err
		}
		bw.WriteString("  ")
		bw.Write(b)
		if i < n-1 {
			bw.WriteString(",\n")
		}
	}
	bw.WriteString("\n]\n")
	return bw.Flush()
}

// writeCSV writes a header and rows as CSV.
func writeCSV(w io.Writer, header []string, rows [][]string) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(header); err != nil {
		return err
	}
	if err := cw.WriteAll(rows); err != nil {
		return err
	}
	return cw.Error()
}

// errWriter remembers the first write error so a report's many printf
// calls need one check.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
