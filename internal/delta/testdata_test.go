package delta

// testdataDir holds the reference tables (shared/testdata beside the repo).
const testdataDir = "../../../shared/testdata"
