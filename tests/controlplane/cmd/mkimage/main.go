// Command mkimage wraps a root filesystem tarball into an image archive in the
// format `docker save` writes (manifest.json, the image config, one layer), which
// `ctr images import` and `docker load` both read. It is how mettaton's tests
// make images with no registry and no base image: the layer is whatever the
// caller put in the tarball (a static binary and the few files it needs).
//
// Usage:
//
//	mkimage -o OUT.tar -tag NAME:TAG [-entrypoint JSON] [-cmd JSON] [-user U]
//	        [-env K=V]... [-label K=V]... [-expose 7777/tcp]... ROOTFS.tar
package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	out := flag.String("o", "", "output archive")
	tag := flag.String("tag", "", "image reference, NAME:TAG")
	entrypoint := flag.String("entrypoint", "", "entrypoint as a JSON array")
	cmd := flag.String("cmd", "", "command as a JSON array")
	user := flag.String("user", "", "user the process runs as")
	workdir := flag.String("workdir", "", "working directory")
	var env, labels, expose list
	flag.Var(&env, "env", "K=V, repeatable")
	flag.Var(&labels, "label", "K=V, repeatable")
	flag.Var(&expose, "expose", "PORT/PROTO, repeatable")
	flag.Parse()
	if *out == "" || *tag == "" || flag.NArg() != 1 {
		fail("usage: mkimage -o OUT.tar -tag NAME:TAG [options] ROOTFS.tar")
	}
	layer, err := os.ReadFile(flag.Arg(0))
	check(err)
	sum := sha256.Sum256(layer)
	diffID := "sha256:" + hex.EncodeToString(sum[:])

	config := map[string]any{}
	if *entrypoint != "" {
		config["Entrypoint"] = jsonArray("entrypoint", *entrypoint)
	}
	if *cmd != "" {
		config["Cmd"] = jsonArray("cmd", *cmd)
	}
	if *user != "" {
		config["User"] = *user
	}
	if *workdir != "" {
		config["WorkingDir"] = *workdir
	}
	if len(env) > 0 {
		config["Env"] = []string(env)
	}
	if len(labels) > 0 {
		m := map[string]string{}
		for _, kv := range labels {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				fail("label %q is not K=V", kv)
			}
			m[k] = v
		}
		config["Labels"] = m
	}
	if len(expose) > 0 {
		m := map[string]struct{}{}
		for _, p := range expose {
			m[p] = struct{}{}
		}
		config["ExposedPorts"] = m
	}
	image := map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      "1970-01-01T00:00:00Z",
		"config":       config,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		"history":      []map[string]any{{"created": "1970-01-01T00:00:00Z", "created_by": "mkimage"}},
	}
	imageJSON, err := json.Marshal(image)
	check(err)
	configSum := sha256.Sum256(imageJSON)
	configName := hex.EncodeToString(configSum[:]) + ".json"
	layerName := hex.EncodeToString(sum[:]) + "/layer.tar"
	manifest, err := json.Marshal([]map[string]any{{
		"Config":   configName,
		"RepoTags": []string{*tag},
		"Layers":   []string{layerName},
	}})
	check(err)

	f, err := os.Create(*out + ".tmp")
	check(err)
	w := tar.NewWriter(f)
	add := func(name string, data []byte) {
		check(w.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}))
		_, err := w.Write(data)
		check(err)
	}
	add(configName, imageJSON)
	add(layerName, layer)
	add("manifest.json", manifest)
	check(w.Close())
	check(f.Close())
	check(os.Rename(*out+".tmp", *out))
}

func jsonArray(what, s string) []string {
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		fail("-%s must be a JSON array of strings: %v", what, err)
	}
	return v
}

func check(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mkimage: "+format+"\n", args...)
	os.Exit(1)
}
