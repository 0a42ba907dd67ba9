package main

import (
	"flag"
	"fmt"
	"strings"
)

// envFlags lets environment variables stand in for flags: each listed flag
// that the command line leaves unset takes the value of WXSIM_ and its name
// in upper case, dashes as underscores (--aes-key: WXSIM_AES_KEY). Flags
// win over variables.
type envFlags struct {
	fs    *flag.FlagSet
	names []string
}

// bindEnv ties the named flags of fs to their variables and mentions the
// variable in each flag's help. Call it before fs.Parse.
func bindEnv(fs *flag.FlagSet, names ...string) envFlags {
	for _, name := range names {
		f := fs.Lookup(name)
		if f == nil {
			panic("bindEnv: no flag --" + name)
		}
		f.Usage += " [$" + envName(name) + "]"
	}
	return envFlags{fs, names}
}

func envName(flagName string) string {
	return "WXSIM_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// apply sets each bound flag that fs.Parse did not see from its variable,
// looked up with lookupEnv, if that is set. Call it after fs.Parse.
func (e envFlags) apply(lookupEnv func(string) (string, bool)) error {
	set := map[string]bool{}
	e.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, name := range e.names {
		if set[name] {
			continue
		}
		v, ok := lookupEnv(envName(name))
		if !ok {
			continue
		}
		if err := e.fs.Set(name, v); err != nil {
			return fmt.Errorf("$%s: %v", envName(name), err)
		}
	}
	return nil
}
