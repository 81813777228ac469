// Command runc-without-sys-resource is an OCI runtime for dockerd that runs runc with
// CAP_SYS_RESOURCE taken out of every capability set it is asked for.
//
// Why: on a machine whose capability bounding set lacks CAP_SYS_RESOURCE, runc refuses any
// container that asks for it ("unable to apply caps: operation not permitted"), and
// `docker run --privileged` always asks for every capability. kind's nodes are privileged
// containers. Registered as dockerd's default runtime, this wrapper removes the capability from
// the bundle's config.json on `create` and `run`, and from the --process file on `exec`, then
// hands over to runc with the same arguments.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

const dropped = "CAP_SYS_RESOURCE"

func main() {
	args := os.Args[1:]
	command, bundle, process := scan(args)
	var err error
	switch command {
	case "create", "run":
		err = edit(filepath.Join(bundle, "config.json"), func(doc map[string]any) {
			if proc, ok := doc["process"].(map[string]any); ok {
				dropFrom(proc)
			}
		})
	case "exec":
		if process != "" {
			err = edit(process, dropFrom)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "runc-without-sys-resource: %v\n", err)
		os.Exit(1)
	}
	runc := os.Getenv("RUNC_BINARY")
	if runc == "" {
		runc = "/usr/sbin/runc"
	}
	if err := syscall.Exec(runc, append([]string{runc}, args...), os.Environ()); err != nil {
		fmt.Fprintf(os.Stderr, "runc-without-sys-resource: exec %s: %v\n", runc, err)
		os.Exit(1)
	}
}

// scan finds runc's subcommand (the first argument that is not a global flag or its value) and
// the --bundle/-b and --process/-p values after it.
func scan(args []string) (command, bundle, process string) {
	globalsWithValue := map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}
	bundle = "."
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if command == "" {
			if globalsWithValue[arg] {
				i++
				continue
			}
			if len(arg) > 0 && arg[0] != '-' {
				command = arg
			}
			continue
		}
		switch arg {
		case "--bundle", "-b":
			if i+1 < len(args) {
				bundle = args[i+1]
				i++
			}
		case "--process", "-p":
			if i+1 < len(args) {
				process = args[i+1]
				i++
			}
		}
	}
	return command, bundle, process
}

// dropFrom removes the capability from each set of a process spec's "capabilities".
func dropFrom(proc map[string]any) {
	sets, ok := proc["capabilities"].(map[string]any)
	if !ok {
		return
	}
	for name, value := range sets {
		list, ok := value.([]any)
		if !ok {
			continue
		}
		kept := make([]any, 0, len(list))
		for _, capability := range list {
			if capability != dropped {
				kept = append(kept, capability)
			}
		}
		sets[name] = kept
	}
}

// edit rewrites a JSON file in place through change, keeping its permissions.
func edit(path string, change func(map[string]any)) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	change(doc)
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, info.Mode().Perm())
}
