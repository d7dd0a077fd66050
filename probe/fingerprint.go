package probe

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Fingerprint identifies a target's settings: two targets with the same
// fingerprint run the same check the same way, so a reload that plans an
// identical target keeps its schedule, its result and its counters. It is
// a SHA-256 over the target's fields, its raw options in a canonical
// encoding, and the contents of the files those options name. The zero
// value means "not computed".
type Fingerprint [sha256.Size]byte

// IsZero reports whether no fingerprint was computed.
func (f Fingerprint) IsZero() bool { return f == Fingerprint{} }

// String returns the fingerprint in hex.
func (f Fingerprint) String() string { return hex.EncodeToString(f[:]) }

// Same reports whether t and o have the same settings. Targets that both
// carry a fingerprint compare by it, so options decoded into values that
// never compare equal (an x509.CertPool) do not make an unchanged target
// look changed; otherwise (targets built by hand, in code) every field is
// compared, decoded options included.
func (t *Target) Same(o *Target) bool {
	if !t.Fingerprint.IsZero() && !o.Fingerprint.IsZero() {
		return t.ID == o.ID && t.Fingerprint == o.Fingerprint
	}
	return reflect.DeepEqual(t, o)
}

// FileOptionSuffix marks an option that names a file (ca_file,
// password_file, community_file, …): a fingerprint covers the file's
// contents, so a changed CA or secret is a changed target.
const FileOptionSuffix = "_file"

// maxFingerprintFile is how much of an option's file a fingerprint reads.
const maxFingerprintFile = 16 << 20

// Fingerprinter computes target fingerprints. It reads each file named by
// an option once and keeps a keyed digest of it (never its contents), so
// planning many targets that share a CA or a secret reads it once. A
// Fingerprinter is for one planning pass: a new pass sees changed files.
// It is not safe for concurrent use.
type Fingerprinter struct {
	files map[string][sha256.Size]byte
}

// fileKey keys the digests of option files. A secret's digest is keyed
// with a random key of this process, so a fingerprint that leaks cannot be
// used to guess a short secret offline; fingerprints only need to agree
// within one process.
var fileKey = func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // never fails (crypto/rand panics instead)
	return k
}()

// Of returns the fingerprint of t with raw, the merged options before
// decoding (the config's values: file paths and variable names, not the
// secrets). t.Options is not read: raw stands for it.
func (fp *Fingerprinter) Of(t *Target, raw map[string]any) Fingerprint {
	h := sha256.New()
	for _, s := range []string{
		t.ID, t.Product, t.Flow, t.Source, t.Destination, t.Host, strconv.Itoa(t.Port),
		string(t.Protocol), t.Check, string(t.Expect), string(t.Required),
		strconv.FormatInt(int64(t.Interval), 10), strconv.FormatInt(int64(t.Timeout), 10),
		t.SourceAddress, t.IPFamily,
	} {
		writeString(h, s)
	}
	var files []string
	encodeCanonical(h, reflect.ValueOf(raw), "", &files)
	slices.Sort(files)
	files = slices.Compact(files)
	for _, path := range files {
		writeString(h, path)
		d := fp.fileDigest(path)
		h.Write(d[:])
	}
	var f Fingerprint
	h.Sum(f[:0])
	return f
}

// fileDigest returns the keyed digest of a file's contents; a file that
// cannot be read digests its error, so it changes when the file appears.
func (fp *Fingerprinter) fileDigest(path string) [sha256.Size]byte {
	if d, ok := fp.files[path]; ok {
		return d
	}
	if fp.files == nil {
		fp.files = map[string][sha256.Size]byte{}
	}
	m := hmac.New(sha256.New, fileKey)
	f, err := os.Open(path)
	if err == nil {
		_, err = io.Copy(m, io.LimitReader(f, maxFingerprintFile))
		f.Close()
	}
	if err != nil {
		m.Reset()
		m.Write([]byte("unreadable\x00" + err.Error()))
	}
	var d [sha256.Size]byte
	m.Sum(d[:0])
	fp.files[path] = d
	return d
}

func writeString(h hash.Hash, s string) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(s)))
	h.Write(n[:])
	h.Write([]byte(s))
}

// encodeCanonical writes v to h in an encoding that does not depend on map
// order: every value carries its kind and length, map keys are sorted. key
// is the map key v is stored under; the string values of keys ending in
// FileOptionSuffix are collected into files.
func encodeCanonical(h hash.Hash, v reflect.Value, key string, files *[]string) {
	for v.IsValid() && (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) && !v.IsNil() {
		v = v.Elem()
	}
	if !v.IsValid() || (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) && v.IsNil() {
		h.Write([]byte{'n'})
		return
	}
	switch v.Kind() {
	case reflect.String:
		h.Write([]byte{'s'})
		writeString(h, v.String())
		if strings.HasSuffix(key, FileOptionSuffix) && v.String() != "" {
			*files = append(*files, v.String())
		}
	case reflect.Bool:
		h.Write([]byte{'b'})
		writeString(h, strconv.FormatBool(v.Bool()))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		h.Write([]byte{'i'})
		writeString(h, strconv.FormatInt(v.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		h.Write([]byte{'i'})
		writeString(h, strconv.FormatUint(v.Uint(), 10))
	case reflect.Float32, reflect.Float64:
		h.Write([]byte{'f'})
		writeString(h, strconv.FormatFloat(v.Float(), 'g', -1, 64))
	case reflect.Slice, reflect.Array:
		h.Write([]byte{'l'})
		writeString(h, strconv.Itoa(v.Len()))
		for i := range v.Len() {
			encodeCanonical(h, v.Index(i), key, files)
		}
	case reflect.Map:
		type kv struct {
			k string
			v reflect.Value
		}
		entries := make([]kv, 0, v.Len())
		for it := v.MapRange(); it.Next(); {
			entries = append(entries, kv{fmt.Sprint(it.Key().Interface()), it.Value()})
		}
		slices.SortFunc(entries, func(a, b kv) int { return strings.Compare(a.k, b.k) })
		h.Write([]byte{'m'})
		writeString(h, strconv.Itoa(len(entries)))
		for _, e := range entries {
			writeString(h, e.k)
			encodeCanonical(h, e.v, e.k, files)
		}
	default:
		h.Write([]byte{'x'})
		writeString(h, fmt.Sprintf("%T %v", v.Interface(), v.Interface()))
	}
}
