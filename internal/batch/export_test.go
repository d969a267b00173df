package batch

// ListChunk is how many batches of a list one upsert carries, for the tests of the
// streaming refresh.
const ListChunk = listChunk
