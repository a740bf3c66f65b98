"""Generated protobuf and gRPC code for the Blindgate protocols (sources in proto/)."""
