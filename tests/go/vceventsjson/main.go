// vceventsjson prints every event of a vCenter (or vcsim) as one JSON line, encoded the
// way VEBA's vCenter source (sources-for-knative VSphereSource) encodes event data: Go's
// encoding/json applied to the govmomi event struct. govmomi is pinned in go.mod to the
// version every sources-for-knative release uses, whose types carry no json tags.
//
// Output lines: {"Class": "<Go type name>", "Event": <the event as encoding/json writes it>}
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"reflect"

	"github.com/vmware/govmomi/event"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

type line struct {
	Class string
	Event types.BaseEvent
}

func main() {
	sdk := flag.String("url", "", "SDK URL, e.g. https://127.0.0.1:8989/sdk")
	username := flag.String("username", "", "user name")
	password := flag.String("password", "", "password (or VCEVENTS_PASSWORD)")
	caFile := flag.String("ca-file", "", "PEM file of the CA to trust (TLS)")
	pageSize := flag.Int("page-size", 100, "events per ReadNextEvents call")
	flag.Parse()
	if *password == "" {
		*password = os.Getenv("VCEVENTS_PASSWORD")
	}
	if err := run(context.Background(), *sdk, *username, *password, *caFile, int32(*pageSize)); err != nil {
		fmt.Fprintln(os.Stderr, "vceventsjson:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, sdk, username, password, caFile string, pageSize int32) error {
	u, err := url.Parse(sdk)
	if err != nil {
		return fmt.Errorf("parse url: %w", err)
	}
	soapClient := soap.NewClient(u, false)
	if caFile != "" {
		if err := soapClient.SetRootCAs(caFile); err != nil {
			return fmt.Errorf("ca file: %w", err)
		}
	}
	client, err := vim25.NewClient(ctx, soapClient)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if err := session.NewManager(client).Login(ctx, url.UserPassword(username, password)); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	collector, err := event.NewManager(client).CreateCollectorForEvents(ctx, types.EventFilterSpec{})
	if err != nil {
		return fmt.Errorf("create collector: %w", err)
	}
	// a new collector stands after its latest page: rewind to read the whole history
	if _, err := methods.RewindCollector(ctx, client, &types.RewindCollector{This: collector.Reference()}); err != nil {
		return fmt.Errorf("rewind collector: %w", err)
	}
	out := json.NewEncoder(os.Stdout)
	for {
		events, err := collector.ReadNextEvents(ctx, pageSize)
		if err != nil {
			return fmt.Errorf("read events: %w", err)
		}
		if len(events) == 0 {
			return nil
		}
		for _, e := range events {
			class := reflect.TypeOf(e).Elem().Name()
			if err := out.Encode(line{Class: class, Event: e}); err != nil {
				return fmt.Errorf("encode %s: %w", class, err)
			}
		}
	}
}
