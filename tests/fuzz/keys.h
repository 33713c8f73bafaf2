/*
 * The harnesses' fixed keys (made for them, protecting nothing): a P-256 and an RSA
 * 2048 key, and the JWK Set of their public halves (kids "ec1" and "rsa1"). Fixed so
 * that the committed seed tokens, signed with them, verify on every run.
 */
#ifndef QUELL_FUZZ_KEYS_H
#define QUELL_FUZZ_KEYS_H

static const char fuzz_ec_key[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgLvaNERoPZpcZH7E6\n"
	"g7DPdpaaRhfijjLF2Bvtj8Kn31OhRANCAASfX+JgG7UL1gv+ybsVM63/eKIoys3V\n"
	"zTCh8smLAK/rjccs/GxA2VnO99ZOqfjGVebC/QT1f0NjQw1ikeA9SYSP\n"
	"-----END PRIVATE KEY-----\n";

static const char fuzz_rsa_key[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCrTrgHKOoYHeJL\n"
	"22jaa5pkDpA0Qej2VT8+ffV1poskdPPdAujdhhQenAJxmsDBkQejiUsnJARWLzKY\n"
	"ufGPywTm6vpB29pLlJHZnqc60x6aURX3FlPixMOt8SN7ZMLJOqH5ZaRQ7VXC3iJe\n"
	"iq+4Kuk7/fKHDrHcRMgsCBOVNClDXTOo5CGZER1eiJl61sA6hhS63cJ0ZhX9wYY6\n"
	"VxqDXmsU1wfv+TWbVDMHYImdBGUa1M1Sl9I3z5DlkFWH6o8juZaE7OJ9Gw5vQydv\n"
	"aNl/Zfz1y3oXEJzNgbUCdWxUWlJMjKD04R+eM7/b+LDGcKafH9/9uMQc+z6jBFyi\n"
	"BJAaVCHDAgMBAAECggEACmzZDFzItSYFADYaA2O6TPb3WmEULm62GqxG/aaXX+Ub\n"
	"BwZwF1ltmir99RSpHD6QLfIjPH58RoGUGJ7g3OTdHksK+SGA/1wUW1ZpVRdXnxPY\n"
	"V9yoNPU9QDXAr2WoDU1tqsQtH0pBIe90qrc/hfKBcZohj9T/CLK3v5SHGtlYucx1\n"
	"msfYiSBTO2L4Mxz0v5kWYq89v4jTjXDfBe06ZwihXClGD3WPenNxOWDoNULWT5Kh\n"
	"V8tBkAWFLjwxQK+bOA8EcEO2x7i1jMAZxuqm2VCplkPjquMKKGLvqzqtIBY2pCjI\n"
	"gfWWq0J3SMxDDVseyZbHct1AE6xOsk6atVP92E0p/QKBgQDury11MDxU1q04tTlD\n"
	"YgQ+DKBdmlQ7WX6n5R1lC6RtaTDHozDCWqzW+WvoPaHNLRnbXwZwIZpp2a4aHRdg\n"
	"pjmCoHW6TlABOdpPbon34Jr38EC53+Z1D3HlgMN4uBu/k0+UygkQ8y9zPuUjJym3\n"
	"GKKRRDQgR3JYwzxfNQX/ZGjK7wKBgQC3vDnLyO6xGkgcC6M6P5jgzf/kvqcQhLyS\n"
	"2AWlXhPDVDIJLjtC84P0Mq4s2Ciu4++2TJo4/nLXaAEqldD0dZcUZs9Yx+uzYI5t\n"
	"j+uOEJ5VYjTU+KuKDctKy1h/jYYeHjfm4KkmwvfZSiKF4CGjc1WpGrKt8aISd6x9\n"
	"TwBxbs3mbQKBgQCqHPZEIJXPTZX15cujR9eINc2SCO1hw14u4W+61bpiNGeM0bVt\n"
	"v9yR9wC+bDbGmg9kt2xKPNjl+jxI5lUEEFTK0fw2RZxl00rR9BGnNlCcx4IKOBbz\n"
	"dYeSr9whTO6R8rb0b65Yg0pdVAVRsZbcpVUwPbD9FI7dzoBXxt24cWLyxwKBgBRW\n"
	"8vL7SGk0ppzsMOKm3a6tP1G8RVRPzWxYG6/lzTxHWs6nXooX2Ri0b5GpUD+kHgpJ\n"
	"Sp1ala4A5ngnY51cUyBADV4fq5kM7Fd2ojX04wJCv+R/rsW2pzWdcyuTqDA3Wirl\n"
	"3fPbi4JzcYTuferRPr9cpEEbSbzPoLmygDMOeB61AoGBAJInwJpPEY8fFKdLWeun\n"
	"COB8Y5k6SzgYwzT4gQXecVyAWNEtGFHMWKqTNlU3+/P6omj7jRo1AiNKXk3jBCVk\n"
	"cT8wPx/Bh+buU5Ib8Mnk89RNTWfWk6lXOCrxsyeJSOIadM0OKyRsg5GxjqE421zE\n"
	"nqdlvGZzXTyMwpeZJFvyuTzO\n"
	"-----END PRIVATE KEY-----\n";

static const char fuzz_jwks[] =
	"{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\", \"kid\": \"ec1\", \""
	"use\": \"sig\", \"x\": \"n1_iYBu1C9YL_sm7FTOt_3iiKMrN1c0wofLJiwCv640\""
	", \"y\": \"xyz8bEDZWc731k6p-MZV5sL9BPV_Q2NDDWKR4D1JhI8\"}, {\"kty\": "
	"\"RSA\", \"kid\": \"rsa1\", \"alg\": \"RS256\", \"n\": \"q064ByjqGB3iS"
	"9to2muaZA6QNEHo9lU_Pn31daaLJHTz3QLo3YYUHpwCcZrAwZEHo4lLJyQEVi8ymLnxj8s"
	"E5ur6QdvaS5SR2Z6nOtMemlEV9xZT4sTDrfEje2TCyTqh-WWkUO1Vwt4iXoqvuCrpO_3yh"
	"w6x3ETILAgTlTQpQ10zqOQhmREdXoiZetbAOoYUut3CdGYV_cGGOlcag15rFNcH7_k1m1Q"
	"zB2CJnQRlGtTNUpfSN8-Q5ZBVh-qPI7mWhOzifRsOb0Mnb2jZf2X89ct6FxCczYG1AnVsV"
	"FpSTIyg9OEfnjO_2_iwxnCmnx_f_bjEHPs-owRcogSQGlQhww\", \"e\": \"AQAB\"}]"
	"}";

#endif
