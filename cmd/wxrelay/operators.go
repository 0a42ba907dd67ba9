package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
)

// The operator commands: the people who run the relay, from a shell, so
// that the first operator can be added where the relay runs, before
// anyone has a key.
const operatorsUsage = `usage: wxrelay operators <command> [flags]

commands:
  add NAME           add an operator and print their key, shown this once: it signs them in
                     to the console and works as an admin token on the API
  list               the operators, with who added them
  remove OPERATOR_ID remove an operator: their key, and every console session it opened, stop at once

Flags as for wxrelay tenants (--url, --admin-token, --json).
`

var operatorCommands = map[string]apiCommand{
	"add":    {bind: noFlags(addOperatorCmd), needID: true},
	"list":   {bind: noFlags(listOperatorsCmd)},
	"remove": {bind: noFlags(removeOperatorCmd), needID: true},
}

func operators(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	g := apiGroup{name: "operators", usage: operatorsUsage, commands: operatorCommands, idName: "NAME or OPERATOR_ID"}
	return g.run(ctx, args, getenv, stdout, stderr)
}

// addOperatorCmd adds the operator named name (the command's argument).
func addOperatorCmd(c *apiClient, name string, stdout io.Writer) error {
	var resp struct {
		Operator struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"operator"`
		Key string `json:"key"`
	}
	raw, err := c.call(http.MethodPost, "/v1/operators", map[string]any{"name": name}, &resp)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(stdout, raw)
	}
	_, err = fmt.Fprintf(stdout, "operator %s added (%s). Their key, shown this once; hand it over privately:\n%s\n", resp.Operator.Name, resp.Operator.ID, resp.Key)
	return err
}

func listOperatorsCmd(c *apiClient, _ string, stdout io.Writer) error {
	var resp struct {
		Operators []struct {
			ID         string `json:"id"`
			Name       string `json:"name"`
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
	fmt.Fprintln(w, "ID\tNAME\tADDED\tBY")
	for _, o := range resp.Operators {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", o.ID, o.Name, o.CreateTime, o.CreatedBy)
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
