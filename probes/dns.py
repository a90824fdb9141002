"""placeholder replaced by the dns probe"""
