"""What holders offer: sites, asset cards, federated assets, and who may see them."""
