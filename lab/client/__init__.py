"""What a client of the service uses: build and submit requests, read results, the callback
receiver and input server, and sample inputs."""
