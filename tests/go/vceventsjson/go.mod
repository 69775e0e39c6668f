module vcstream/tests/go/vceventsjson

go 1.21

require github.com/vmware/govmomi v0.24.1-0.20210127152625-854ba4efe87e
