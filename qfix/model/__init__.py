"""Model side: read and write `.keras` archives and work on their functional graph. No TensorFlow."""
