// Command witnessverify checks Samleng's witnessed checkpoints and tiles with torchwood, the
// Go library behind litewitness, for the interop tests. It shares no code with the Python.
//
// Usage:
//
//	witnessverify checkpoint POLICY FILE   verify a cosigned checkpoint against a tlog-policy;
//	                                       print "ok ORIGIN SIZE" and one "cosigned NAME TIME"
//	                                       line per cosignature from a witness of the policy
//	witnessverify tiles URL POLICY         fetch URL/checkpoint, verify it against the policy,
//	                                       read every entry through the tiles (each checked
//	                                       against the checkpoint's root); print "entries N
//	                                       SHA256" of the entries concatenated
package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "error: "+format+"\n", args...)
	os.Exit(1)
}

func readPolicy(path string) torchwood.Policy {
	data, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	policy, err := torchwood.ParsePolicy(data)
	if err != nil {
		fail("policy: %v", err)
	}
	return policy
}

// witnessKeys returns the cosignature verifiers named on the policy's witness lines.
func witnessKeys(path string) map[string]bool {
	data, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	keys := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 3 && fields[0] == "witness" {
			v, err := torchwood.NewCosignatureVerifier(fields[2])
			if err != nil {
				fail("witness key: %v", err)
			}
			keys[fmt.Sprintf("%s %08x", v.Name(), v.KeyHash())] = true
		}
	}
	return keys
}

func verify(policyPath string, signed []byte) (torchwood.Checkpoint, *note.Note) {
	checkpoint, n, err := torchwood.VerifyCheckpoint(signed, readPolicy(policyPath))
	if err != nil {
		fail("checkpoint: %v", err)
	}
	return checkpoint, n
}

func checkCheckpoint(policyPath, file string) {
	signed, err := os.ReadFile(file)
	if err != nil {
		fail("%v", err)
	}
	checkpoint, n := verify(policyPath, signed)
	fmt.Printf("ok %s %d\n", checkpoint.Origin, checkpoint.N)
	witnesses := witnessKeys(policyPath)
	for _, sig := range n.Sigs {
		if !witnesses[fmt.Sprintf("%s %08x", sig.Name, sig.Hash)] {
			continue
		}
		t, err := torchwood.CosignatureTimestamp(sig)
		if err != nil {
			fail("cosignature: %v", err)
		}
		fmt.Printf("cosigned %s %d\n", sig.Name, t)
	}
}

func checkTiles(url, policyPath string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fetcher, err := torchwood.NewTileFetcher(url)
	if err != nil {
		fail("%v", err)
	}
	signed, err := fetcher.ReadEndpoint(ctx, "checkpoint")
	if err != nil {
		fail("checkpoint: %v", err)
	}
	checkpoint, _ := verify(policyPath, signed)
	client, err := torchwood.NewClient(fetcher)
	if err != nil {
		fail("%v", err)
	}
	digest := sha256.New()
	var count int64
	for index, entry := range client.AllEntries(ctx, checkpoint.Tree, 0) {
		if index != count {
			fail("entry %d came as %d", count, index)
		}
		digest.Write(entry)
		count++
	}
	if err := client.Err(); err != nil {
		fail("entries: %v", err)
	}
	if count != checkpoint.N {
		fail("read %d entries, the checkpoint has %d", count, checkpoint.N)
	}
	fmt.Printf("entries %d %x\n", count, digest.Sum(nil))
}

func main() {
	switch {
	case len(os.Args) == 4 && os.Args[1] == "checkpoint":
		checkCheckpoint(os.Args[2], os.Args[3])
	case len(os.Args) == 4 && os.Args[1] == "tiles":
		checkTiles(os.Args[2], os.Args[3])
	default:
		fmt.Fprintln(os.Stderr, "usage: witnessverify checkpoint POLICY FILE | tiles URL POLICY")
		os.Exit(2)
	}
}
