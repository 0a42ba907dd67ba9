package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
)

// The operator commands: the people who run the relay, from a shell, so
// that the first operator can be added where the relay runs, before
// anyone has a key.
const operatorsUsage = `usage: wxrelay operators <command> [flags]

commands:
  add NAME           add an operator and print their key, shown this once: it signs them in
                     to the console and works on the API with the rights of their role
                     (--role admin, the default: everything; --role viewer: reads only)
  list               the operators, with their roles and who added them
  remove OPERATOR_ID remove an operator: their key, and every console session it opened, stop at once

Flags as for wxrelay tenants (--url, --admin-token, --json).
`

var operatorCommands = map[string]apiCommand{
	"add":    {bind: addOperatorFlags, needID: true},
	"list":   {bind: noFlags(listOperatorsCmd)},
	"remove": {bind: noFlags(removeOperatorCmd), needID: true},
}

func operators(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	g := apiGroup{name: "operators", usage: operatorsUsage, commands: operatorCommands, idName: "NAME or OPERATOR_ID"}
	return g.run(ctx, args, getenv, stdout, stderr)
}

// addOperatorFlags binds add's --role.
func addOperatorFlags(fs *flagSet) apiRun {
	role := fs.String("role", "admin", "admin (everything) or viewer (reads only)")
	return func(c *apiClient, name string, stdout io.Writer) error { return addOperatorCmd(c, name, *role, stdout) }
}

// addOperatorCmd adds the operator named name (the command's argument)
// with role.
func addOperatorCmd(c *apiClient, name, role string, stdout io.Writer) error {
	apiRole, ok := map[string]string{"admin": "ROLE_ADMIN", "viewer": "ROLE_VIEWER"}[role]
	if !ok {
		return fmt.Errorf("--role %q: want admin or viewer", role)
	}
	var resp struct {
		Operator struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"operator"`
		Key string `json:"key"`
	}
	raw, err := c.call(http.MethodPost, "/v1/operators", map[string]any{"name": name, "role": apiRole}, &resp)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(stdout, raw)
	}
	_, err = fmt.Fprintf(stdout, "operator %s added (%s, %s). Their key, shown this once; hand it over privately:\n%s\n", resp.Operator.Name, role, resp.Operator.ID, resp.Key)
	return err
}

func listOperatorsCmd(c *apiClient, _ string, stdout io.Writer) error {
	var resp struct {
		Operators []struct {
			ID         string `json:"id"`
			Name       string `json:"name"`
			Role       string `json:"role"`
			CreateTime string `json:"create_time"`
			CreatedBy  string `json:"created_by"`
		} `json:"operators"`
	}
	raw, err := c.call(http.MethodGet, "/v1/operators", nil, &resp)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(stdout, raw)
	}
	if len(resp.Operators) == 0 {
		_, err := fmt.Fprintln(stdout, "no operators yet: wxrelay operators add NAME")
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tROLE\tADDED\tBY")
	for _, o := range resp.Operators {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", o.ID, o.Name, strings.ToLower(strings.TrimPrefix(o.Role, "ROLE_")), o.CreateTime, o.CreatedBy)
	}
	return w.Flush()
}

func removeOperatorCmd(c *apiClient, id string, stdout io.Writer) error {
	if _, err := c.call(http.MethodDelete, "/v1/operators/"+url.PathEscape(id), nil, nil); err != nil {
		return err
	}
	_, err := fmt.Fprintf(stdout, "removed %s: their key and console sessions stopped working\n", id)
	return err
}
