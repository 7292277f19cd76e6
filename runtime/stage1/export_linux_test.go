package stage1

// FDControl lends the package's descriptor helper to the external tests (enter_linux_test.go),
// which drive ptys without changing their files' blocking mode.
var FDControl = control
