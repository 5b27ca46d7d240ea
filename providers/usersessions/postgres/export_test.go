package postgres

// Encode is encode, for the tests that compare a statement's notifications with a
// transaction's.
var Encode = encode
