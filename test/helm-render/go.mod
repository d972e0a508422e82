// GOPATH mode only (see main.go): Go resolves sprig's ".../v3" import paths for code under a
// GOPATH that has a go.mod. No requirements: nothing is downloaded.
module helm-render

go 1.19
