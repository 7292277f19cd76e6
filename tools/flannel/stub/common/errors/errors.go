// Package errors stands in for the tencentcloud SDK's error type, which flannel's tencentvpc
// backend checks for.
package errors

import "fmt"

// TencentCloudSDKError is an error the cloud API returned.
type TencentCloudSDKError struct {
	Code      string
	Message   string
	RequestId string
}

func (e *TencentCloudSDKError) Error() string {
	return fmt.Sprintf("[TencentCloudSDKError] Code=%s, Message=%s, RequestId=%s", e.Code, e.Message, e.RequestId)
}
