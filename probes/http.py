"""placeholder replaced by the http probe"""
