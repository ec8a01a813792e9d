// Command verify is an independent verifier of Samleng's log formats for the interop tests.
//
// It is written against Go's golang.org/x/mod/sumdb/note (C2SP signed notes) and
// golang.org/x/mod/sumdb/tlog (RFC 6962 trees and proofs), not against the Python code, so
// agreement between the two is evidence that both follow the published formats.
//
// Usage:
//
//	verify bundle DIR         check an export bundle; print "count N"
//	verify receipt FILE VKEY  check a tlog-proof receipt against the verifier key file VKEY
//	verify prove DIR          print, as JSON, tlog's inclusion proof of every leaf and its
//	                          consistency proof from every smaller size, for Python to check
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const (
	leafPrefix    = "samleng-leaf/v1\n"
	leafSize      = 81
	receiptPrefix = "samleng-receipt/v1\n"
	proofHeader   = "c2sp.org/tlog-proof@v1"
)

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "error: "+format+"\n", args...)
	os.Exit(1)
}

func readVkey(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	return strings.TrimSuffix(string(data), "\n")
}

// openCheckpoint verifies a signed checkpoint with note.Open and parses its three lines.
func openCheckpoint(msg []byte, vkey string) checkpoint {
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		fail("vkey: %v", err)
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		fail("checkpoint: want exactly three lines")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		fail("checkpoint: bad size %q", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		fail("checkpoint: bad root %q", lines[2])
	}
	if n.Sigs[0].Name != lines[0] || verifier.Name() != lines[0] {
		fail("checkpoint: key name %q is not the origin %q", verifier.Name(), lines[0])
	}
	var h tlog.Hash
	copy(h[:], root)
	return checkpoint{origin: lines[0], size: size, root: h}
}

// memoryLog keeps tlog's stored hashes of all leaves in memory.
type memoryLog struct{ stored []tlog.Hash }

func (m *memoryLog) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m.stored)) {
			return nil, errors.New("hash not stored")
		}
		out[i] = m.stored[x]
	}
	return out, nil
}

func (m *memoryLog) append(n int64, leaf []byte) {
	hashes, err := tlog.StoredHashes(n, leaf, m)
	if err != nil {
		fail("%v", err)
	}
	m.stored = append(m.stored, hashes...)
}

func loadLeaves(dir string) ([][]byte, *memoryLog) {
	data, err := os.ReadFile(filepath.Join(dir, "leaves.bin"))
	if err != nil {
		fail("%v", err)
	}
	if len(data)%leafSize != 0 {
		fail("leaves.bin is not a whole number of leaves")
	}
	var leaves [][]byte
	log := &memoryLog{}
	for i := 0; i < len(data); i += leafSize {
		leaf := data[i : i+leafSize]
		log.append(int64(len(leaves)), leaf)
		leaves = append(leaves, leaf)
	}
	return leaves, log
}

func publishedCheckpoints(dir, vkey string) []checkpoint {
	paths, err := filepath.Glob(filepath.Join(dir, "checkpoints", "*"))
	if err != nil {
		fail("%v", err)
	}
	var out []checkpoint
	for _, p := range paths {
		msg, err := os.ReadFile(p)
		if err != nil {
			fail("%v", err)
		}
		c := openCheckpoint(msg, vkey)
		if filepath.Base(p) != strconv.FormatInt(c.size, 10) {
			fail("%s holds a checkpoint of size %d", p, c.size)
		}
		out = append(out, c)
	}
	return out
}

func verifyBundle(dir string) {
	vkey := readVkey(filepath.Join(dir, "vkey"))
	msg, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		fail("%v", err)
	}
	latest := openCheckpoint(msg, vkey)

	petitionJSON, err := os.ReadFile(filepath.Join(dir, "petition.json"))
	if err != nil {
		fail("%v", err)
	}
	var petition struct {
		Origin           string `json:"origin"`
		VerificationMode string `json:"verification_mode"`
		Log              struct {
			Vkey string `json:"vkey"`
		} `json:"log"`
	}
	if err := json.Unmarshal(petitionJSON, &petition); err != nil {
		fail("petition.json: %v", err)
	}
	if petition.Origin != latest.origin || petition.Log.Vkey != vkey {
		fail("petition.json names another origin or key")
	}
	// Without email verification no leaf may claim a confirmed address (docs/formats.md §5).
	if petition.VerificationMode != "none" && petition.VerificationMode != "email" {
		fail("petition.json has no verification_mode \"none\" or \"email\"")
	}

	leaves, log := loadLeaves(dir)
	if int64(len(leaves)) != latest.size || latest.size == 0 {
		fail("leaves.bin has %d leaves, checkpoint says %d", len(leaves), latest.size)
	}
	headerHash := sha256.Sum256(petitionJSON)
	seen := make(map[string]bool)
	count := 0
	for i, leaf := range leaves {
		if !bytes.HasPrefix(leaf, []byte(leafPrefix)) {
			fail("leaf %d: bad prefix", i)
		}
		kind, c, d := leaf[16], leaf[17:49], leaf[49:81]
		switch {
		case i == 0 && (kind != 0 || !bytes.Equal(c, headerHash[:]) || !bytes.Equal(d, make([]byte, 32))):
			fail("leaf 0 is not the header of petition.json")
		case i > 0 && kind != 1 && kind != 2:
			fail("leaf %d has kind %d", i, kind)
		case kind == 2 && petition.VerificationMode == "none":
			fail("leaf %d has kind 2, but verification_mode is \"none\"", i)
		case seen[string(c)]:
			fail("leaf %d repeats a commitment", i)
		}
		seen[string(c)] = true
		if kind == 1 || kind == 2 {
			count++
		}
		proof, err := tlog.ProveRecord(latest.size, int64(i), log)
		if err != nil {
			fail("%v", err)
		}
		if err := tlog.CheckRecord(proof, latest.size, latest.root, int64(i), tlog.RecordHash(leaf)); err != nil {
			fail("leaf %d: %v", i, err)
		}
	}
	root, err := tlog.TreeHash(latest.size, log)
	if err != nil || root != latest.root {
		fail("the leaves do not hash to the checkpoint's root")
	}
	for _, c := range publishedCheckpoints(dir, vkey) {
		if c.size > latest.size || c.size == 0 {
			fail("checkpoint of size %d out of range", c.size)
		}
		proof, err := tlog.ProveTree(latest.size, c.size, log)
		if err != nil {
			fail("%v", err)
		}
		if err := tlog.CheckTree(proof, latest.size, latest.root, c.size, c.root); err != nil {
			fail("checkpoint of size %d is not a prefix: %v", c.size, err)
		}
	}
	fmt.Printf("count %d\n", count)
}

func verifyReceipt(file, vkeyFile string) {
	data, err := os.ReadFile(file)
	if err != nil {
		fail("%v", err)
	}
	var extra []byte
	var index int64 = -1
	var proof tlog.RecordProof
	rest := string(data)
	line := func() string {
		i := strings.IndexByte(rest, '\n')
		if i < 0 {
			fail("proof ends early")
		}
		l := rest[:i]
		rest = rest[i+1:]
		return l
	}
	if line() != proofHeader {
		fail("not a tlog-proof")
	}
	for l := line(); ; l = line() {
		switch {
		case strings.HasPrefix(l, "extra "):
			if extra, err = base64.StdEncoding.DecodeString(l[6:]); err != nil {
				fail("extra: %v", err)
			}
		case strings.HasPrefix(l, "index "):
			if index, err = strconv.ParseInt(l[6:], 10, 64); err != nil {
				fail("index: %v", err)
			}
		case l == "":
			goto checkpointFollows
		default:
			h, err := tlog.ParseHash(l)
			if err != nil {
				fail("proof hash: %v", err)
			}
			proof = append(proof, h)
		}
	}
checkpointFollows:
	c := openCheckpoint([]byte(rest), readVkey(vkeyFile))
	if len(extra) != 1+16+32 || index < 0 {
		fail("receipt needs extra (kind, r, d) and an index")
	}
	kind, r, d := extra[0], extra[1:17], extra[17:]
	commitment := sha256.Sum256([]byte(receiptPrefix + c.origin + "\n" + string(r)))
	leaf := append(append(append([]byte(leafPrefix), kind), commitment[:]...), d...)
	if err := tlog.CheckRecord(proof, c.size, c.root, index, tlog.RecordHash(leaf)); err != nil {
		fail("inclusion: %v", err)
	}
	fmt.Printf("counted: leaf %d in checkpoint of size %d of %s\n", index, c.size, c.origin)
}

func prove(dir string) {
	leaves, log := loadLeaves(dir)
	n := int64(len(leaves))
	encode := func(p []tlog.Hash) []string {
		out := []string{}
		for _, h := range p {
			out = append(out, base64.StdEncoding.EncodeToString(h[:]))
		}
		return out
	}
	type inclusion struct {
		Index int64    `json:"index"`
		Proof []string `json:"proof"`
	}
	type consistency struct {
		Old   int64    `json:"old"`
		Proof []string `json:"proof"`
	}
	root, err := tlog.TreeHash(n, log)
	if err != nil {
		fail("%v", err)
	}
	result := struct {
		Size        int64         `json:"size"`
		Root        string        `json:"root"`
		Inclusion   []inclusion   `json:"inclusion"`
		Consistency []consistency `json:"consistency"`
	}{Size: n, Root: base64.StdEncoding.EncodeToString(root[:])}
	for i := int64(0); i < n; i++ {
		p, err := tlog.ProveRecord(n, i, log)
		if err != nil {
			fail("%v", err)
		}
		result.Inclusion = append(result.Inclusion, inclusion{Index: i, Proof: encode(p)})
	}
	for m := int64(1); m <= n; m++ {
		p, err := tlog.ProveTree(n, m, log)
		if err != nil {
			fail("%v", err)
		}
		result.Consistency = append(result.Consistency, consistency{Old: m, Proof: encode(p)})
	}
	out, err := json.Marshal(result)
	if err != nil {
		fail("%v", err)
	}
	fmt.Println(string(out))
}

func main() {
	switch {
	case len(os.Args) == 3 && os.Args[1] == "bundle":
		verifyBundle(os.Args[2])
	case len(os.Args) == 4 && os.Args[1] == "receipt":
		verifyReceipt(os.Args[2], os.Args[3])
	case len(os.Args) == 3 && os.Args[1] == "prove":
		prove(os.Args[2])
	default:
		fmt.Fprintln(os.Stderr, "usage: verify bundle DIR | receipt FILE VKEY | prove DIR")
		os.Exit(2)
	}
}
